"""PyTorch eager implementation (CPU): autograd `backward()` and in-place optimizer updates.

SGD uses `torch.optim.SGD`. Adam is written by hand with in-place tensor ops because
`torch.optim.Adam` adds eps to the *bias-corrected* sqrt(v), which is a different formula from
TF2 Keras (eps added to the raw sqrt(v)) and would not pass `--check` at 1e-4.
Importing this module fails when torch is not installed; the runner then skips it.
"""
import torch
import torch.nn.functional as F

from .workloads import ADAM, Bench, adam_lr_t, convert_feed

VERSION = torch.__version__


def _to_torch(x, y):
    y = torch.from_numpy(y)
    return torch.from_numpy(x), (y.long() if y.dtype == torch.int32 else y)


def _bench(problem, feed, names, forward, opt):
    """Shared driver: forward(params, x, y) -> loss; opt has zero_grad() and step()."""
    params = [torch.tensor(problem.init[k], requires_grad=True) for k in names]
    feed = convert_feed(problem, feed, _to_torch)
    opt = opt(params)

    def step():
        x, y = feed()
        opt.zero_grad(set_to_none=True)
        loss = forward(params, x, y)
        loss.backward()
        opt.step()
        return loss
    return Bench(step, lambda: {k: p.detach().numpy().copy() for k, p in zip(names, params)})


def _sgd(problem):
    return lambda params: torch.optim.SGD(params, lr=problem.lr)


def make_linreg(problem, feed):
    def forward(params, x, y):
        W, b = params
        return torch.mean(torch.square(W * x + b - y))
    return _bench(problem, feed, ['W', 'b'], forward, _sgd(problem))


def make_elementwise(problem, feed):
    def forward(params, x, y):
        a, b = params
        z = a * x + b
        per_elem = F.softplus(-y * z) + 0.1 * torch.square(torch.tanh(z))
        return torch.mean(per_elem) + 0.01 * torch.mean(a * a + b * b)
    return _bench(problem, feed, ['a', 'b'], forward, _sgd(problem))


class KerasAdam:
    """Adam in the TF2 Keras formula, in place: var -= lr_t * m / (sqrt(v) + eps)."""

    def __init__(self, params):
        self.params = params
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        self.t += 1
        lr_t = adam_lr_t(self.t)
        b1, b2, eps = ADAM['beta1'], ADAM['beta2'], ADAM['eps']
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.addcdiv_(m, v.sqrt().add_(eps), value=-lr_t)


def make_mlp(problem, feed):
    def forward(params, x, labels):
        h = x
        for i in range(0, len(params), 2):
            h = torch.addmm(params[i + 1], h, params[i])
            if i + 2 < len(params):
                h = torch.relu(h)
        return F.cross_entropy(h, labels)
    return _bench(problem, feed, list(problem.init), forward, KerasAdam)


FACTORIES = {'linreg': make_linreg, 'mlp': make_mlp, 'elementwise': make_elementwise}
