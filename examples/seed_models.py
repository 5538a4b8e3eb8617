"""The models of the "Intro to TensorFlow" tutorial (seed 003), with tj.keras.

1. A custom dense layer: `build` creates W and b with `add_weight`, `call` is sigmoid(xW + b).
2. The same layer as `Sequential([Dense(3, activation='sigmoid')])`.
3. A subclassed `Model`, and one whose `call` takes a Python flag (`isidentity`) that returns
   the inputs unchanged; under `tj.function` the flag is static (one trace per value).
4. SGD on L = (x - x_f)^2: the tutorial's hand-written GradientTape loop, and the same with
   `tj.keras.optimizers.SGD(...).minimize`; both must reach x_f and agree step by step.

    python examples/seed_models.py
    python examples/seed_models.py --steps 200 --seed 3
"""
import argparse
import os
import sys

import numpy as np

try:
    import tracejit as tj
except ImportError:  # running from a checkout without installing: use the checkout
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
    import tracejit as tj


class OurDenseLayer(tj.keras.layers.Layer):
    def __init__(self, n_output_nodes):
        super(OurDenseLayer, self).__init__()
        self.n_output_nodes = n_output_nodes

    def build(self, input_shape):
        d = int(input_shape[-1])
        self.W = self.add_weight("weight", shape=[d, self.n_output_nodes])
        self.b = self.add_weight("bias", shape=[1, self.n_output_nodes])

    def call(self, x):
        z = tj.add(tj.matmul(x, self.W), self.b)
        y = tj.sigmoid(z)
        return y


class SubclassModel(tj.keras.Model):
    def __init__(self, n_output_nodes):
        super(SubclassModel, self).__init__()
        self.dense_layer = tj.keras.layers.Dense(n_output_nodes, activation='sigmoid')

    def call(self, inputs):
        return self.dense_layer(inputs)


class IdentityModel(tj.keras.Model):
    def __init__(self, n_output_nodes):
        super(IdentityModel, self).__init__()
        self.dense_layer = tj.keras.layers.Dense(n_output_nodes, activation='sigmoid')

    def call(self, inputs, isidentity=False):
        x = self.dense_layer(inputs)
        if isidentity:
            return inputs
        return x


def custom_layer(seed):
    tj.random.set_seed(seed)
    layer = OurDenseLayer(3)
    layer.build((1, 2))
    x_input = tj.constant([[1, 2.]], shape=(1, 2))
    y = layer.call(x_input)
    expected = 1 / (1 + np.exp(-(np.asarray(x_input) @ layer.W.numpy() + layer.b.numpy())))
    print('custom layer output:', y.numpy())
    return y.numpy(), float(np.max(np.abs(y.numpy() - expected)))


def sequential_model(x_input):
    model = tj.keras.Sequential()
    model.add(tj.keras.layers.Dense(3, activation='sigmoid'))
    output = model(x_input).numpy()
    print('Sequential output:', output)
    return model, output


def identity_model(x_input):
    model = IdentityModel(3)
    out_activate = model.call(x_input, False)
    out_identity = model.call(x_input, True)
    print('IdentityModel, isidentity=False:', out_activate.numpy())
    print('IdentityModel, isidentity=True: ', out_identity.numpy())
    forward = tj.function(lambda inputs, isidentity: model(inputs, isidentity=isidentity))
    compiled = [forward(np.asarray(x_input), flag).numpy() for flag in (False, True)]
    print(f'compiled with the flag static: {forward.cache_info()["traces"]} traces')
    return out_activate.numpy(), out_identity.numpy(), compiled


def sgd_by_hand(x0, x_f, learning_rate, steps):
    """The tutorial's loop: tape, gradient, x.assign(x - lr * grad)."""
    x = tj.Variable([x0])
    history = []
    for _ in range(steps):
        with tj.GradientTape() as tape:
            loss = tj.pow(x - x_f, 2)
        grad = tape.gradient(loss, x)
        x.assign(x - learning_rate * grad)
        history.append(x.numpy()[0])
    return np.array(history).ravel()


def sgd_minimize(x0, x_f, learning_rate, steps):
    """The same descent with the Keras optimizer's TF2 `minimize(loss_fn, var_list)`."""
    x = tj.Variable([x0])
    optimizer = tj.keras.optimizers.SGD(learning_rate=learning_rate)
    history = []
    for _ in range(steps):
        optimizer.minimize(lambda: tj.pow(x - x_f, 2), [x])
        history.append(x.numpy()[0])
    return np.array(history).ravel(), int(optimizer.iterations.numpy())


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=500, help='SGD iterations (default 500)')
    parser.add_argument('--learning-rate', type=float, default=1e-2)
    parser.add_argument('--seed', type=int, default=1)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error('--steps must be >= 1')
    return args


def main(argv=None):
    """Run the example; returns a dict of the results (used by the tests)."""
    args = parse_args(argv)
    x_input = tj.constant([[1, 2.]], shape=(1, 2))
    layer_out, layer_error = custom_layer(args.seed)
    model, sequential_out = sequential_model(x_input)
    subclass_out = SubclassModel(3).call(x_input).numpy()
    print('SubclassModel output:', subclass_out)
    activate, identity, compiled = identity_model(x_input)

    print(f'\nSGD on (x - x_f)^2, x_f = 4, {args.steps} steps:')
    tj.random.set_seed(args.seed)
    x0 = tj.random.normal([1]).numpy()
    print('Initializing x = {}'.format(x0))
    by_hand = sgd_by_hand(x0, 4, args.learning_rate, args.steps)
    minimized, iterations = sgd_minimize(x0, 4, args.learning_rate, args.steps)
    print(f'  GradientTape loop: x = {by_hand[-1]:.6f}')
    print(f'  SGD.minimize:      x = {minimized[-1]:.6f} ({iterations} iterations)')
    return dict(layer_output=layer_out, layer_error=layer_error,
                sequential_output=sequential_out, sequential_params=model.count_params(),
                subclass_output=subclass_out, identity_activate=activate,
                identity_identity=identity, identity_compiled=compiled,
                x0=float(x0[0]), sgd_by_hand=by_hand, sgd_minimize=minimized,
                iterations=iterations)


if __name__ == '__main__':
    main()
