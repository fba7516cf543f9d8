"""Shared fixtures: a temporary artifact store, a Flask test client, and a real gunicorn server."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from vigil.artifacts import ArtifactStore
from vigil.config import Settings
from vigil.service import create_app

REPO_ROOT = Path(__file__).resolve().parents[1]

# Tests build their settings themselves: a developer's VIGIL_* variables (a predict token, a model key,
# another models folder) must not leak into them, nor into the servers they start.
for _name in [name for name in os.environ if name.startswith("VIGIL_")]:
    del os.environ[_name]


# The fast lane (`make test-fast`, `pytest -m "not slow"`) leaves out what takes seconds: whole modules
# that run real servers, brokers, browsers or subprocesses or train default models in a module fixture,
# and single tests measured over ~1 s on the 2-core reference machine (`pytest --durations=0`), so
# that `make test-fast` (two workers) stays under a minute: 516 tests, 58 s of CPU in all.
# Re-measure when adding heavy tests.
SLOW_MODULES = {
    "tests/test_dns_streaming.py",
    "tests/test_install.py",
    "tests/test_ember_scale.py",  # dask clusters, bounded-memory and booster training
    "tests/test_cli_errors.py",  # every case starts `python -m vigil` (imports pandas and scikit-learn)
    "tests/test_service_limits.py",  # its module fixture trains all five default models
    "tests/test_dns_task.py",  # its module fixture trains the DNS default model
    "tests/compat/test_mlpt_compat.py",  # its module fixture trains the web-events default model
    "tests/test_service_fuzz.py",
    "tests/test_service_live.py",
    "tests/test_active_learning_live.py",
    "tests/test_web_sessions_browser.py",
    "tests/test_ui_browser.py",
    "tests/test_service_replicas.py",  # two live gunicorn replicas
    "tests/test_stream_generic.py",  # the embedded broker, twice
    "tests/test_dns_stream_domains.py",  # the embedded broker
    "tests/test_dns_stream_group.py",  # the embedded broker, two consumer processes
    "tests/test_service_explain.py",  # its module fixture trains every task's default model
    "tests/test_ember_json_fast.py",  # its module fixture trains the EMBER demo model
    "tests/test_ember_tensors.py",  # its module fixture trains the EMBER demo model
    "tests/test_dns_explain.py",  # its module fixture trains the DNS default model
    "tests/test_dns_stream_speed.py",  # its module fixture trains the DNS default model
}
SLOW_TESTS = {
    "tests/compat/test_alectio_compat.py::test_the_readme_quickstart_runs_as_written_on_the_demo",
    "tests/compat/test_anomaly_compat.py::test_mlp_files_are_what_process_output_plots",
    "tests/compat/test_course_compat.py::test_course_client_gets_a_scalar_for_one_session",
    "tests/compat/test_course_compat.py::test_course_client_reads_errors_from_a_200_body",
    "tests/compat/test_dns_assignment_compat.py::test_generated_sld_reads_in_the_assignment_consumer",
    "tests/compat/test_mlpt_compat.py::test_mlpt_readme_request_is_answered_in_its_shape",
    "tests/test_dns_real.py::test_predict_scores_real_captured_names_with_the_real_model",
    "tests/test_dns_task.py::test_default_model_is_saved_with_metrics",
    "tests/test_dns_task.py::test_demo_runs_the_whole_story",
    "tests/test_dns_task.py::test_generate_is_seeded_and_has_the_cic_columns",
    "tests/test_ember_hardening.py::test_section_table_bomb_is_refused_before_lief_with_bounded_memory",
    "tests/test_ember_hardening.py::test_zeros_upload_streams_in_bounded_memory",
    "tests/test_ember_pipeline.py::test_scripts_call_the_same_code",
    "tests/test_ember_service.py::test_real_gunicorn_scores_an_uploaded_pe_file",
    "tests/test_iot_anomaly.py::test_gunicorn_serves_the_saved_model",
    "tests/test_iot_anomaly.py::test_interrupted_tune_keeps_the_rows_already_scored",
    "tests/test_iot_anomaly.py::test_tune_command_writes_the_original_score_files_and_plots",
    "tests/test_service_limits.py::test_a_timed_out_prediction_stops_its_work",
    "tests/test_service_limits.py::test_amplification_against_a_live_server",
    "tests/test_service_limits.py::test_json_nested_too_deep_is_400_on_every_predict_route",
    "tests/test_web_events.py::test_one_request_of_60000_events",
    "tests/test_web_events.py::test_readme_curl_and_replay_against_live_server",
    "tests/test_web_events.py::test_train_cli_compares_and_tunes",
    "tests/test_web_events.py::test_trained_pipeline_carries_its_featurizer",
    "tests/test_web_sessions.py::test_cli_build_train_predict_roundtrip",
    "tests/test_web_sessions.py::test_cli_train_on_a_labelled_csv",
    "tests/compat/test_alectio_compat.py::test_end_of_task_call_carries_the_bearer_token",
    "tests/compat/test_anomaly_compat.py::test_adaboost_files_are_what_process_output_plots_with_the_max_depth_key",
    "tests/compat/test_anomaly_compat.py::test_production_classify_answers_the_originals_strings",
    "tests/compat/test_ember_compat.py::test_init_ember_then_classify_binaries",
    "tests/compat/test_ember_compat.py::test_optimize_model_is_embers_search",
    "tests/test_active_learning.py::test_uncertainty_sampling_beats_random_where_it_should",
    "tests/test_active_learning.py::test_cli_runs_an_experiment_and_writes_the_learning_curve",
    "tests/test_dns_real.py::test_every_captured_name_is_scored_none_refused",
    "tests/test_dns_real.py::test_rehoming_varies_the_zone_shape_and_keeps_the_payload",
    "tests/test_ember_features.py::test_byte_level_blocks_read_in_chunks_equal_one_whole_file_pass",
    "tests/test_ember_hardening.py::test_lief_without_the_guard_hits_the_address_space_limit_and_costs_one_answer",
    "tests/test_ember_hardening.py::test_a_worker_that_dies_is_retried_once_then_skipped_and_the_others_land",
    "tests/test_ember_hardening.py::test_a_dead_child_costs_its_job_only",
    "tests/test_ember_hardening.py::test_a_child_past_the_time_limit_is_killed_and_the_next_job_answered",
    "tests/test_ember_pipeline.py::test_train_evaluate_classify_on_the_demo_set",
    "tests/test_iot_anomaly.py::test_train_classify_and_boundary_plots",
    "tests/test_iot_anomaly.py::test_comparison_table_puts_published_numbers_next_to_ours",
    "tests/test_service_predict.py::test_prediction_over_the_time_limit_is_503_and_the_worker_goes_on",
    "tests/test_web_events.py::test_train_cli_on_featurized_matrix",
    "tests/test_web_events.py::test_cluster_cli_on_features_file",
    # the web-sessions default model (trained once per run, several seconds) and what needs it
    "tests/test_web_sessions.py::test_default_training_compares_both_models_on_time_ordered_folds",
    "tests/test_web_sessions.py::test_predict_writes_kaggles_submission_format",
    "tests/test_web_sessions.py::test_predict_one_session_in_the_course_shape",
    "tests/test_web_sessions.py::test_predict_accepts_ids_names_unknown_names_flat_rows_and_lists",
    "tests/test_web_sessions.py::test_malformed_session_gets_success_false_and_400_naming_session_and_field",
    "tests/test_web_sessions.py::test_non_json_and_wrong_shapes_are_400_in_the_course_shape",
    "tests/test_web_sessions.py::test_too_many_sessions_is_refused",
    "tests/test_web_sessions.py::test_dask_training_on_a_two_worker_local_cluster_saves_the_same_artifact",
    "tests/test_web_sessions.py::test_ui_pages_render_for_every_task",
    # the DNS default model (dns_default_store) and the windows scored with it
    "tests/test_stream_checkpoint.py::test_a_restored_processor_goes_on_as_the_one_that_never_stopped",
    "tests/test_stream_checkpoint.py::test_an_altered_checkpoint_is_logged_and_the_processor_starts_afresh",
    # the per-domain detector over a million names, a replayed day, the captures
    "tests/test_dns_domains.py::test_memory_is_bounded_whatever_the_number_of_distinct_names",
    "tests/test_dns_domains.py::test_a_day_of_real_benign_names_flags_no_domain",
    "tests/test_dns_domains.py::test_a_tool_hidden_in_benign_traffic_is_still_the_only_domain_flagged",
    "tests/test_dns_domains.py::test_each_captured_tool_is_flagged_within_its_first_few_hundred_queries",
    "tests/test_dns_generator.py::test_generated_attack_rows_have_the_feature_distributions_of_the_captures",
    "tests/test_dns_generator.py::test_no_generated_sld_is_without_letters_unless_all_digits",
    "tests/test_ember_service.py::test_raw_pe_body_is_scored",
    "tests/test_active_learning.py::test_processes_follow_the_alectio_contracts",
    "tests/test_iot_anomaly.py::test_grid_keys_in_the_originals_spelling_and_unknown_keys",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path, _, name = item.nodeid.partition("::")
        if path in SLOW_MODULES or f"{path}::{name.split('[')[0]}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env(
        models_dir=tmp_path / "models", work_dir=tmp_path / "runs", bucket_root=tmp_path / "bucket"
    )


@pytest.fixture
def store(settings) -> ArtifactStore:
    return ArtifactStore(settings.models_dir)


@pytest.fixture
def client(settings, store):
    app = create_app(settings, store)
    app.config["TESTING"] = True
    return app.test_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """``vigil serve`` (gunicorn) in a subprocess on a free loopback port."""

    def __init__(self, models_dir: Path, env: dict | None = None, args: list[str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = dict(os.environ, VIGIL_MODELS_DIR=str(models_dir), **(env or {}))
        command = [sys.executable, "-m", "vigil", "serve", "--port", str(self.port), *(args or [])]
        # Own process group, so stop() reaches gunicorn's master and every worker at once.
        self.process = subprocess.Popen(
            command,
            env=environment,
            cwd=REPO_ROOT,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # Drain the server's output as it comes: a full pipe would block the server's logging.
        self._lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self._lines.extend(self.process.stdout), daemon=True)
        self._reader.start()
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()  # never leave a server behind when start-up fails
            raise

    def _wait_healthy(self, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                raise RuntimeError(f"server exited early:\n{self.output}")
            try:
                if requests.get(self.url + "/health", timeout=5).ok:
                    return
            except requests.RequestException:  # not listening yet, or workers still importing
                time.sleep(0.2)
        raise RuntimeError(f"server did not become healthy in {seconds:.0f} s:\n{self.output}")

    @property
    def output(self) -> str:
        """Everything the server printed so far."""
        return "".join(self._lines)

    def stop(self) -> str:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=30)
                break
            except subprocess.TimeoutExpired:
                continue
        self._reader.join(timeout=5)
        return self.output


@pytest.fixture
def live_server():
    """Factory: ``live_server(models_dir, env=..., args=...)`` -> running :class:`LiveServer`."""
    servers = []

    def start(models_dir: Path, **kwargs) -> LiveServer:
        server = LiveServer(models_dir, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def ember_demo_models(tmp_path_factory) -> Path:
    """A models folder holding the ember default (demo) model, trained once per run; read-only for its
    users (copy it to change it)."""
    from vigil.tasks import get_task

    models = tmp_path_factory.mktemp("ember-demo-models")
    get_task("ember").train_default(ArtifactStore(models), Settings.from_env(models_dir=models))
    return models


@pytest.fixture(scope="session")
def dns_default_store(tmp_path_factory) -> ArtifactStore:
    """An artifact store holding the DNS default model, trained once per run; read-only for its users
    (dynamic models a stream saves next to it are theirs to ignore)."""
    from vigil.tasks import get_task

    root = tmp_path_factory.mktemp("dns-default")
    settings = Settings.from_env(models_dir=root / "models", work_dir=root / "runs")
    store = ArtifactStore(settings.models_dir)
    get_task("dns_exfil").train_default(store, settings)
    return store


@pytest.fixture(scope="session")
def web_sessions_trained(tmp_path_factory):
    """The web-sessions default model trained once per run on the shipped sample, as `vigil bootstrap` does:
    (settings, store, manifest entry). Shared by the API and the browser tests."""
    from vigil.tasks import get_task

    root = tmp_path_factory.mktemp("web_sessions")
    trained_settings = Settings.from_env(models_dir=root / "models", work_dir=root / "runs")
    trained_store = ArtifactStore(trained_settings.models_dir)
    entry = get_task("web-sessions").train_default(trained_store, trained_settings)
    return trained_settings, trained_store, entry
