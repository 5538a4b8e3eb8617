"""Shared test configuration: hypothesis profiles, the tests directory on sys.path, the test
tiers, and `Graph.verify()` after every optimisation pass.

`TRACEJIT_FUZZ=long` (or `pytest --hypothesis-profile=long`) runs the random-program tests with
many more examples than the default, bounded profile.

Fast tier: `pytest -m "not compiled"` runs only the tests that execute eagerly or on the IR
interpreter (about 40 s on two cores); plain `pytest` runs everything. A test is `compiled`
when it compiles Numba kernels (any `tj.function` call, Keras `fit`/`evaluate`/`predict` without
`run_eagerly`, a `tf.compat.v1` Session run) or starts processes that do. Whole files are marked
by `COMPILED_FILES`, single tests of mixed files by `COMPILED_TESTS` (or by writing
`@pytest.mark.compiled` on them). `TRACEJIT_AUDIT_TIERS=1 pytest -m "not compiled"` fails every
unmarked test that compiles a kernel, runs Numba or starts a process, naming it.

Every graph `passes.optimize` produces is checked: the fixture `_verify_after_every_pass` makes
each pass of the pipeline call `graph.verify()` on its result (and optimize on its input).
"""
import os
import sys

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # `import gradcheck`

settings.register_profile('default', max_examples=40, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile('long', max_examples=1000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get('TRACEJIT_FUZZ', 'default'))

# Tests check compiled kernels against the interpreter, so a first call compiles instead of
# interpreting while a thread compiles (test_background_compile.py covers that mode);
# subprocesses inherit the setting.
os.environ['TRACEJIT_BACKGROUND_COMPILE'] = '0'
import tracejit.config  # noqa: E402
from tracejit import passes  # noqa: E402

tracejit.config.compile_in_background = False


# ----------------------------------------------------------------------------- test tiers

COMPILED_FILES = frozenset({
    'test_background_compile.py', 'test_compiler.py', 'test_custom_train_step.py',
    'test_examples.py', 'test_fast_call.py', 'test_fastmath.py', 'test_gemm.py',
    'test_rowops.py',
    'test_fuzz_compiled.py', 'test_processes.py', 'test_random_programs.py',
    'test_reliability.py', 'test_threads.py',
})

# {file name: test functions that compile}: a function name covers all its parameter sets, a
# full item name ('test_x[id]') one of them
COMPILED_TESTS = {
    'test_architecture.py': ('test_a_new_elementwise_primitive_needs_no_backend_entry',),
    'test_autodiff.py': (
        'test_tape_inside_function_matches_eager_and_updates_variables',
        'test_tapes_inside_function_persistent_nested_and_unconnected',
        'test_gradients_sums_over_ys_and_takes_grad_ys', 'test_gradients_unconnected_and_variables',
        'test_grad_inside_function', 'test_custom_gradient_inside_function_and_second_order',
        'test_stop_gradient_in_function_and_grad', 'test_branch_on_a_static_flag_is_fine'),
    'test_compat_v1.py': (
        'test_seed001_placeholders', 'test_seed001_variables_live_in_sessions',
        'test_seed001_x_squared_by_hand_with_gradients_and_optimizer', 'test_seed001_adam',
        'test_seed001_hospital_visits', 'test_nested_fetches', 'test_variables_live_per_session',
        'test_errors', 'test_compiled_once_per_fetch_set_and_feed_signature',
        'test_momentum_matches_numpy', 'test_unknown_shapes_are_checked_at_run_time',
        'test_compute_and_apply_gradients_grad_ys_and_random_ops'),
    'test_keras.py': (
        'test_optimizers_match_published_update_rules[compiled]',
        'test_dropout_compiled_draws_a_new_mask_each_call',
        'test_fit_converges_and_equals_a_hand_written_compiled_loop',
        'test_shuffled_fit_equals_a_hand_written_loop_over_the_same_permutations',
        'test_last_partial_batch_retraces_without_compiling',
        'test_steps_per_execution_gives_the_same_weights', 'test_run_eagerly_matches_compiled_fit',
        'test_dropout_is_active_only_in_the_training_step', 'test_evaluate_and_predict_match_numpy',
        'test_verbose_output', 'test_validation_data_and_split',
        'test_fit_rejects_bad_options_and_changes_nothing',
        'test_fit_after_a_failed_first_trace_still_creates_the_optimizer_slots',
        'test_save_load_round_trip_is_atomic', 'test_callback_hooks_run_in_keras_order',
        'test_early_stopping_stops_when_the_monitor_stalls',
        'test_early_stopping_restores_the_best_weights',
        'test_keyboard_interrupt_in_a_callback_keeps_the_weights_of_the_last_step'),
    'test_misuse.py': tuple(f'test_misuse[{case}]' for case in (
        'function_variable_on_retrace', 'function_debug_nans', 'v1_bad_feed_keeps_variable',
        'fit_wrong_feature_count', 'predict_wrong_feature_count', 'fit_nan_x',
        'load_weights_mismatch', 'load_weights_unbuilt', 'load_weights_missing',
        'debug_nans_inf_argument', 'debug_nans_inf_produced', 'predict_rank1_input')),
    'test_primitives.py': ('test_function_matches_eager', 'test_gradient_at_special_points'),
    'test_public_ops.py': ('test_integer_reductions_keep_their_dtype',),
    'test_seeds.py': (
        'test_seed000_compiled_train_matches_eager', 'test_seed002_compiled_train_matches_eager',
        'test_seed003_sgd_compiled_matches_eager', 'test_seed004_compiled_train_matches_eager'),
    'test_seeds_keras.py': (
        'test_seed003_identity_model_flag', 'test_seed004_compile_and_fit',
        'test_seed004_fit_log_one_line_per_epoch'),
    'test_special_values.py': (
        'test_sigmoid_cross_entropy_gradient_is_sigmoid_minus_label_at_zero',
        'test_binary_crossentropy_from_logits_with_a_zero_output_layer',
        'test_relu_propagates_nan_and_infinities',
        'test_native_rsqrt_and_sqrt_gradient_equal_eager',
        'test_grad_of_one_value_passed_twice_gives_each_partial[function]',
        'test_unsigned_values_keep_their_value', 'test_fit_refuses_non_finite_data_before_any_step',
        'test_predict_on_zero_rows_is_empty',
        'test_load_weights_of_a_damaged_file_names_it_and_changes_nothing'),
}

# {(file name, test function): predicate on its parameters}, for parameter sets ids cannot name
COMPILED_PARAMS = {
    # index 0 also checks the gradient graph through tj.function
    ('test_primitives.py', 'test_vjp_matches_finite_differences'): lambda p: p['index'] == 0,
}


def _is_compiled(item):
    name = item.path.name
    if name in COMPILED_FILES:
        return True
    function = getattr(item, 'originalname', None) or item.name.split('[')[0]
    names = COMPILED_TESTS.get(name, ())
    if function in names or item.name in names:
        return True
    predicate = COMPILED_PARAMS.get((name, function))
    callspec = getattr(item, 'callspec', None)
    return bool(predicate and callspec and predicate(callspec.params))


def pytest_collection_modifyitems(config, items):
    compiled = pytest.mark.compiled
    for item in items:
        if _is_compiled(item):
            item.add_marker(compiled)


# ----------------------------------------------------------------- verify after every pass

def _verified(name, rewrite_pass):
    if getattr(rewrite_pass, '_verifies', False):
        return rewrite_pass

    def run(graph):
        result = rewrite_pass(graph)
        try:
            result.verify()
        except AssertionError as e:
            raise AssertionError(f'graph invalid after pass {name!r}: {e}') from e
        return result
    run._verifies = True
    return run


_optimize = passes.optimize


def _verifying_optimize(graph, pipeline=None):
    try:
        graph.verify()
    except AssertionError as e:
        raise AssertionError(f'graph invalid before the pass pipeline: {e}') from e
    return _optimize(graph, [(name, _verified(name, p)) for name, p in pipeline or passes.PIPELINE])


@pytest.fixture(autouse=True)
def _verify_after_every_pass(monkeypatch):
    """`optimize` (which tj.function calls through the module) wraps every pass it runs; the
    PIPELINE list is wrapped too, for callers that hold the original `optimize`."""
    monkeypatch.setattr(passes, 'optimize', _verifying_optimize)
    monkeypatch.setattr(passes, 'PIPELINE', [(name, _verified(name, p))
                                             for name, p in passes.PIPELINE])


# ------------------------------------------------------------ audit of the tiers (opt-in)

if os.environ.get('TRACEJIT_AUDIT_TIERS', '').strip() not in ('', '0'):
    @pytest.fixture(autouse=True)
    def _audit_tier(request, monkeypatch):
        """Records what an unmarked test does that belongs to the compiled tier."""
        if request.node.get_closest_marker('compiled'):
            yield
            return
        import multiprocessing.process
        import subprocess

        import tracejit.backend as backend
        seen = []
        compile_graph, popen_init = backend.compile_graph, subprocess.Popen.__init__
        start, fork = multiprocessing.process.BaseProcess.start, os.fork

        def audited_compile_graph(*args, **kwargs):
            executable, how = compile_graph(*args, **kwargs)
            if how != 'interpreted':
                seen.append(f'kernel ({how})')
            return executable, how

        def note(what, original):
            def call(*args, **kwargs):
                seen.append(what)
                return original(*args, **kwargs)
            return call
        monkeypatch.setattr(backend, 'compile_graph', audited_compile_graph)
        monkeypatch.setattr(subprocess.Popen, '__init__', note('subprocess', popen_init))
        monkeypatch.setattr(multiprocessing.process.BaseProcess, 'start', note('process', start))
        monkeypatch.setattr(os, 'fork', note('fork', fork))
        if 'numba' in sys.modules:
            from numba.core import dispatcher
            monkeypatch.setattr(dispatcher.Dispatcher, '_compile_for_args', note(
                'numba', dispatcher.Dispatcher._compile_for_args))
        yield
        if seen:
            pytest.fail(f'unmarked test uses the compiled tier: {sorted(set(seen))}; add it to '
                        'COMPILED_TESTS in tests/conftest.py or mark it @pytest.mark.compiled',
                        pytrace=False)
