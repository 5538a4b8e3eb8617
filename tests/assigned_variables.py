"""Programs that assign Variables inside loop bodies and branches, written once against the
TensorFlow API: tests/fixtures/make_assigned_variables.py runs them with TensorFlow, the tests
with tracejit (`tf` is either module).

Each program `fn(tf, xs, v, w)` returns a scalar; `xs` is a float64 vector of 3, `v` and `w`
float64 scalar Variables. `FD_PROGRAMS` assign values that do not depend on `xs`, so finite
differences in `xs` see exactly the paths the gradient follows.
"""
import numpy as np

XS = np.array([0.5, -1.0, 2.0])
V0, W0 = 1.5, 0.5


def _scan(tf, body, xs):
    return tf.foldl(body, xs, initializer=tf.constant(0.0, tf.float64))


def scan_assign_then_read(tf, xs, v, w):
    def body(c, e):
        v.assign(v * 2.0)
        return c + tf.sin(v * e)
    return _scan(tf, body, xs)


def scan_read_then_assign(tf, xs, v, w):
    def body(c, e):
        out = c + v * v * e
        v.assign(v * e + 1.0)
        return out
    return _scan(tf, body, xs)


def scan_assign_add(tf, xs, v, w):
    def body(c, e):
        v.assign_add(v * e)
        return c + v * w
    return _scan(tf, body, xs)


def scan_two_variables(tf, xs, v, w):
    def body(c, e):
        v.assign(v * w)
        w.assign(w + v * e)
        return c + v * w * e
    return _scan(tf, body, xs)


def scan_closes_over_a_read(tf, xs, v, w):
    before = v.read_value()   # traced, the same value as the loop's entry read of v

    def body(c, e):
        v.assign(v + e)
        return c + v * before
    return _scan(tf, body, xs)


def while_assigns(tf, xs, v, w):
    s = tf.reduce_sum(xs)

    def body(i, c):
        v.assign(v * 2.0)
        return i + 1, c + tf.sin(v * s) * w
    return tf.while_loop(lambda i, c: i < 3, body, (0, tf.constant(0.0, tf.float64)),
                         maximum_iterations=3)[1]


def cond_assigns(tf, xs, v, w):
    def taken():
        v.assign(v * 3.0)
        return v * xs[1] + tf.sin(v * xs[0])

    def untaken():
        w.assign(w * 5.0)
        return w * xs[2]
    return tf.cond(tf.reduce_sum(xs) > 0.0, taken, untaken) + v * w


def scan_in_cond(tf, xs, v, w):
    def loop():
        return scan_assign_then_read(tf, xs, v, w) * w
    return tf.cond(tf.reduce_sum(xs) > 0.0, loop, lambda: v * 1.0)


def scan_in_scan(tf, xs, v, w):
    def outer(c, e):
        def inner(a, u):
            v.assign(v * 0.5 + w)
            return a + tf.sin(v * e * u)
        return c + tf.foldl(inner, xs[:2], initializer=tf.constant(0.0, tf.float64))
    return _scan(tf, outer, xs)


PROGRAMS = {f.__name__: f for f in [
    scan_assign_then_read, scan_read_then_assign, scan_assign_add, scan_two_variables,
    scan_closes_over_a_read, while_assigns, cond_assigns, scan_in_cond, scan_in_scan]}
FD_PROGRAMS = ['scan_assign_then_read', 'while_assigns', 'scan_in_cond', 'scan_in_scan']


def variables(tf):
    """Fresh `v` and `w`."""
    return tf.Variable(V0, dtype=tf.float64), tf.Variable(W0, dtype=tf.float64)


def gradients(tf, program, xs, v, w):
    """The value, its gradients in (v, w, xs), and the second derivatives of its gradient in
    v with respect to (v, xs), all from tapes; then the Variables' final values."""
    with tf.GradientTape(persistent=True) as outer:
        outer.watch(xs)
        with tf.GradientTape() as inner:
            inner.watch(xs)
            y = program(tf, xs, v, w)
        g_v, g_w, g_xs = inner.gradient(y, [v, w, xs], unconnected_gradients='zero')
    g_vv, g_vxs = outer.gradient(g_v, [v, xs], unconnected_gradients='zero')
    return [y, g_v, g_w, g_xs, g_vv, g_vxs, v.read_value(), w.read_value()]


NAMES = ['y', 'dv', 'dw', 'dxs', 'dv_dv', 'dv_dxs', 'v_final', 'w_final']
