"""Every use of a private Keras or TensorFlow API, in one place.

Each function names what it relies on; tests/test_compat.py checks each one
against the installed versions, so an upgrade that moves one fails there,
loudly, instead of somewhere in a train step.
"""


def sublayers(model, include_self=False):
    """Every layer inside `model`, nested ones included, each once
    (Keras' `Layer._flatten_layers`)."""
    return list(model._flatten_layers(include_self=include_self))


def own_trainable_variables(layer):
    """The trainable variables a layer creates itself, not those of layers
    inside it (Keras' `Layer._trainable_variables`)."""
    return list(layer._trainable_variables)


def seed_generator_states(layer):
    """The state variables of a layer's random-seed generators (dropout's
    masks; Keras' `Layer._seed_generators`)."""
    return [gen.state for gen in getattr(layer, "_seed_generators", [])]


def skip_optimizer_all_reduce(optimizer):
    """Make a Keras optimizer apply gradients as given, without summing
    them over replicas first: the train step has already done it (Keras'
    `TFOptimizer._all_reduce_sum_gradients`, which `apply` calls)."""
    optimizer._all_reduce_sum_gradients = list
    return optimizer


def is_multi_worker(strategy):
    """True for a strategy that spans several hosts
    (`StrategyExtended._in_multi_worker_mode`)."""
    return strategy.extended._in_multi_worker_mode()
