"""feed-forward network, one sigmoid hidden layer, softmax outputs, cross-entropy: forward, backward and loss head.

GENERATED FILE -- do not edit.  Written by `lstm-derive build` from the stage list of the
network `mlp_softmax`.  Equation labels such as (F1), (B1) and (P1) refer to the derivation
document generated/mlp_softmax.tex.  Depends on NumPy only.

Shapes: x (B, D); y (B, K).
Use: y, cache = forward(params, x); L, dy = loss(y, target); grads, dx = backward(params, cache, dy).
"""
import numpy

PARAMS = {
    "W1": ("H", "D"),
    "W2": ("K", "H"),
    "b1": ("H",),
    "b2": ("K",),
}
TARGET = "labels"  # what loss() takes: integer labels (B,) or values like the output
SIZES = {"D": "input_size", "H": "hidden_size", "K": "output_size"}  # size symbol -> init_params argument


def init_params(input_size, hidden_size, output_size, *, seed=0, dtype=numpy.float64):
    """Parameters drawn uniformly from (-1/sqrt(H), 1/sqrt(H)), the usual recurrent-cell scale."""
    sizes = {"D": int(input_size), "H": int(hidden_size), "K": int(output_size)}
    if min(sizes.values()) < 1:
        raise ValueError(f"sizes must be positive, got {sizes}")
    rng = numpy.random.default_rng(seed)
    bound = 1.0 / numpy.sqrt(sizes["H"])
    return {name: rng.uniform(-bound, bound, size=tuple(sizes[s] for s in shape)).astype(dtype)
            for name, shape in PARAMS.items()}


def forward(params, x):
    """Run the network on a batch x (B, D); returns (y (B, K), cache).

    The cache holds copies of x and the parameters: changing the caller's arrays
    afterwards never changes a gradient.
    """
    x = _real("x", numpy.asarray(x))
    if x.ndim != 2:
        raise ValueError(f"x has shape {x.shape}, expected (B, D)")
    dtype = x.dtype if numpy.issubdtype(x.dtype, numpy.floating) else numpy.dtype(numpy.float64)
    sizes = _sizes(params)
    if x.shape[1] != sizes["D"]:
        raise ValueError(f"x has shape {x.shape}, expected (B, D) = ({x.shape[0]}, {sizes['D']})")
    x = numpy.array(x, dtype=dtype)  # the cache owns what backward reads
    params = {name: numpy.array(_real(f'params["{name}"]', numpy.asarray(params[name])), dtype=dtype)
              for name in PARAMS}
    W1 = params["W1"]
    W2 = params["W2"]
    b1 = params["b1"]
    b2 = params["b2"]
    a1 = x @ W1.T + b1  # (F1)
    h = _sigmoid(a1)  # (F2)
    a2 = h @ W2.T + b2  # (F3)
    y = _softmax(a2)  # (F4)
    cache = dict(params=params, shape=y.shape, x=x, h=h, y=y)
    return y, cache


def loss(y, target):
    """The cross-entropy loss summed over the batch, and its gradient dy = dL/dy.

    target holds integer class labels (B,); the loss reads their one-hot encoding t.
    """
    y = numpy.asarray(y)
    target = numpy.asarray(target)
    if target.shape != y.shape[:1] or not numpy.issubdtype(target.dtype, numpy.integer):
        raise ValueError(f"target must be integer labels of shape ({y.shape[0]},), got {target.dtype} {target.shape}")
    if target.size and (target.min() < 0 or target.max() >= y.shape[1]):
        raise ValueError(f"target labels must lie in [0, {y.shape[1]})")
    t = numpy.zeros_like(y)
    t[numpy.arange(target.shape[0]), target] = 1
    y_safe = numpy.maximum(y, numpy.finfo(y.dtype).tiny)  # log(0) guard
    L = numpy.sum(-t*numpy.log(y_safe))
    dy = -t/y_safe
    return L, dy


def backward(params, cache, dy):
    """Gradients given dy = dL/dy (B, K); returns (grads keyed like params, dx)."""
    if not isinstance(cache, dict) or "params" not in cache:
        raise ValueError("cache must be the second value forward(params, x) returned")
    params = cache["params"]
    x = cache["x"]
    h = cache["h"]
    y = cache["y"]
    W1 = params["W1"]
    W2 = params["W2"]
    b1 = params["b1"]
    b2 = params["b2"]
    dy = _array("dy", dy, cache["shape"], params["W1"].dtype)
    d_y = dy  # (B1)
    d_a2 = y*(d_y - (d_y*y).sum(axis=-1, keepdims=True))  # (B2)
    d_h = d_a2 @ W2  # (B3)
    d_a1 = d_h*h*(1 - h)  # (B4)
    d_x = d_a1 @ W1  # (B5)
    grads = {}
    grads["W1"] = d_a1.T @ x  # (P1)
    grads["W2"] = d_a2.T @ h  # (P2)
    grads["b1"] = d_a1.sum(axis=0)  # (P3)
    grads["b2"] = d_a2.sum(axis=0)  # (P4)
    return grads, d_x


def _sigmoid(z, out=None):
    """The logistic sigmoid 1 / (1 + exp(-z)), computed as (1 + tanh(z / 2)) / 2 (never overflows)."""
    out = numpy.multiply(z, 0.5, out=out)
    numpy.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def _softmax(a):
    """Normalised exponentials along the last axis, shifted by the maximum to avoid overflow."""
    e = numpy.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sizes(params):
    """The size symbols, read off the parameters; every parameter's shape is checked."""
    if not isinstance(params, dict):
        raise ValueError("params must be a dict of arrays keyed like PARAMS")
    missing = [name for name in PARAMS if name not in params]
    if missing:
        raise ValueError(f"params is missing {', '.join(missing)}")
    sizes = {
        "D": numpy.shape(params["W1"])[1] if numpy.ndim(params["W1"]) > 1 else 0,
        "H": numpy.shape(params["W1"])[0] if numpy.ndim(params["W1"]) > 0 else 0,
        "K": numpy.shape(params["W2"])[0] if numpy.ndim(params["W2"]) > 0 else 0,
    }
    for name, shape in PARAMS.items():
        want = tuple(sizes[s] for s in shape)
        got = numpy.shape(params[name])
        if got != want:
            raise ValueError(f'params["{name}"] has shape {got}, expected ({", ".join(shape)}) = {want}')
    return sizes


def _real(name, value):
    """value, unless it is complex: the cell is defined for real numbers."""
    if numpy.iscomplexobj(value):
        raise ValueError(f"{name} is complex ({value.dtype}); the cell takes real arrays")
    return value


def _array(name, value, shape, dtype):
    value = _real(name, numpy.asarray(value))
    if value.shape != shape:
        raise ValueError(f"{name} has shape {value.shape}, expected {shape}")
    return value.astype(dtype, copy=False)
