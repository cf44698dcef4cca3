import types, triton
def clone(jitfn, modname="mine"):
    f = jitfn.fn
    g = dict(f.__globals__); g["__name__"] = modname
    c = types.FunctionType(f.__code__, g, f.__name__, f.__defaults__, f.__closure__)
    c.__qualname__ = f.__qualname__
    return triton.jit(c)
