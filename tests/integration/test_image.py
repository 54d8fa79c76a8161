"""The container image, built without Docker and run as the chart runs it (docs/image.md):
scripts/image builds the Dockerfile with buildah on a base made by mmdebstrap, then runs the
image's worker with buildah's chroot isolation, on the host's network, against the test stack.
The worker scores generated events exactly as the reference does, answers /healthz, /readyz
and /metrics, runs as uid 10001 on a read-only root file system, carries the libraries of the
build, and the image stays small.

Marked `image`: pytest.ini leaves it out of the integration run, ctest runs it as `image`
(make test-fast). Without buildah or mmdebstrap its tests skip, saying so, unless
SS_IMAGE_TEST=1 (make test sets it): then a missing tool fails them."""

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import harness as h

pytestmark = pytest.mark.image

IMAGE = h.ROOT / "scripts" / "image"
BUILD_TIMEOUT_S = 2400  # a cold build: the base, then both stages from nothing
RUN_TIMEOUT_S = 60
# The image with every layer, as buildah counts it: 115 MB on Debian 12.15 with librdkafka
# 2.8.0 and hiredis 1.2.0; a bound at twice that catches a build stage or a toolchain leaking
# into the runtime stage.
MAX_IMAGE_BYTES = 230_000_000
UID = 10001  # the Dockerfile's USER, the chart's runAsUser


def _tail(text, n=60):
    return "\n".join(text.splitlines()[-n:])


def _image(*args, timeout=RUN_TIMEOUT_S):
    """scripts/image ARGS to completion: CompletedProcess with text output."""
    try:
        return subprocess.run([str(IMAGE), *args], cwd=str(h.ROOT), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout,
                              env=h.worker_env())
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"scripts/image {' '.join(args)} still running after {timeout}s; "
                             f"stderr: {(e.stderr or b'')[-2000:]!r}")


@pytest.fixture(scope="module")
def image():
    """streamscore:<version> built by scripts/image (the base and the layers from buildah's
    cache when nothing changed); its log beside the stack's folder (ctest: the build dir)."""
    missing = [t for t in ("buildah", "mmdebstrap") if shutil.which(t) is None]
    if missing:
        why = f"{' and '.join(missing)} not installed (scripts/setup installs them)"
        if os.environ.get("SS_IMAGE_TEST") == "1":
            pytest.fail(f"SS_IMAGE_TEST=1 and {why}", pytrace=False)
        pytest.skip(f"the image cannot be built here: {why}")
    log = h.STACK_DIR.parent / "image-build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "wb") as out:
        try:
            r = subprocess.run([str(IMAGE), "build"], cwd=str(h.ROOT), stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"scripts/image build still running after {BUILD_TIMEOUT_S}s:\n"
                        + _tail(log.read_text(errors="replace")))
    text = log.read_text(errors="replace")
    assert r.returncode == 0, f"scripts/image build exited {r.returncode} ({log}):\n{_tail(text)}"
    print(f"scripts/image build: {time.monotonic() - start:.0f} s ({log})\n"
          + "\n".join(line for line in text.splitlines() if line.startswith("image: ")))
    return SimpleNamespace(tag=_image("tag").stdout.strip(), build_log=text)


def test_the_image_runs_as_uid_10001_and_nothing_writes_its_root_file_system(image):
    probe = ("id -u; id -g; for f in /probe /opt/streamscore/probe /etc/streamscore/probe "
             "/tmp/probe; do touch $f 2>&1 && echo \"$f written\"; done; true")
    as_image_user = _image("exec", "sh", "-c", probe)
    as_root = _image("exec", "--user", "0:0", "sh", "-c", probe)

    for r in (as_image_user, as_root):
        assert r.returncode == 0, f"scripts/image exec: {r.returncode}\n{r.stdout}{r.stderr}"
    assert as_image_user.stdout.splitlines()[:2] == [str(UID), str(UID)], as_image_user.stdout
    assert as_root.stdout.splitlines()[:2] == ["0", "0"], as_root.stdout
    # root too: the file system itself is read-only, not only closed to uid 10001
    for r in (as_image_user, as_root):
        for f in ("/probe", "/opt/streamscore/probe", "/etc/streamscore/probe"):
            assert f"touch: cannot touch '{f}': Read-only file system" in r.stdout, r.stdout
        # /tmp is writable, as the chart's emptyDir there
        assert "/tmp/probe written" in r.stdout, r.stdout


def _pinned(name):
    """A version scripts/setup pins (RDKAFKA_VERSION=2.8.0 ...)."""
    text = (h.ROOT / "scripts" / "setup").read_text(encoding="utf-8")
    return re.search(rf"^{name}=(\S+)$", text, re.M).group(1)


def test_the_image_runs_on_the_libraries_scripts_setup_builds(image):
    """The runtime stage has no Debian librdkafka1 or libhiredis0.14: the worker loads the
    librdkafka and hiredis the build stage built (a librdkafka of another version would show
    as 'built with'), the same as this build's worker with XGBoost. (Avro C and OpenSSL are
    Debian's packages of the release: the image's may be a newer update than this machine's.)"""
    in_image = _image("run", "--version")
    on_host = h.run_cli(["--version"])

    assert in_image.returncode == 0, in_image.stderr
    line = in_image.stdout.strip()
    assert f"librdkafka {_pinned('RDKAFKA_VERSION')}," in line, line
    assert f"hiredis {_pinned('HIREDIS_VERSION')}," in line, line
    assert "built with" not in line, line

    def built(text):
        return re.findall(r"(streamscore|librdkafka|hiredis|XGBoost) (\d+\.\d+\.\d+)", text)

    assert built(line) == built(on_host.stdout), f"image: {line!r}, build: {on_host.stdout!r}"
    # the Dockerfile's own check, in the build log when that layer was built
    assert "librdkafka 2.0" not in image.build_log, "a build step loaded Debian's librdkafka"


def test_the_image_is_smaller_than_its_bound(image):
    r = _image("size")

    assert r.returncode == 0, r.stderr
    size = int(r.stdout.strip())
    print(f"{image.tag}: {size / 1e6:.0f} MB")
    assert 0 < size < MAX_IMAGE_BYTES, \
        f"{image.tag} is {size / 1e6:.0f} MB, over {MAX_IMAGE_BYTES / 1e6:.0f} MB"


class ImageWorker(h.Worker):
    """The image's worker under `scripts/image run`: the image's ENTRYPOINT and CMD, with the
    properties of config_dir mounted at /etc/streamscore, where the chart mounts its own.
    stop() sends SIGTERM, which scripts/image hands to the worker, and wants exit code 0."""

    def __init__(self, config_dir, log_path):
        # not h.Worker.__init__, which starts this build's binary
        self.config_path = Path(config_dir) / "streamscore.properties"
        self.log_path = Path(log_path)
        self.cmd = [str(IMAGE), "run", "-v", f"{config_dir}:/etc/streamscore:ro"]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd, cwd=str(h.ROOT), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log, env=h.worker_env(),
                                     start_new_session=True)
        h._LIVE_WORKERS.add(self)

    def process(self):
        """The pid of the worker itself: the first process under scripts/image whose root is
        not the host's, but for buildah-chroot-exec, which forks it (None while there is
        none)."""
        children = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(stat.parent.name))
        todo = [self.proc.pid]
        while todo:
            for pid in children.get(todo.pop(0), []):
                try:
                    chrooted = os.readlink(f"/proc/{pid}/root") != "/"
                    argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
                except OSError:
                    continue
                if chrooted and argv0 != b"buildah-chroot-exec":
                    return pid
                todo.append(pid)
        return None


def _metrics_port():
    """A port in the thousand of the stack's Kafka port, else any free one."""
    port = h.KAFKA_PORT // 1000 * 1000 + 464
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            return h.free_port()


def _process_facts(pid):
    """uid (real, effective, saved, fs), and the options of the root mount, of process pid."""
    status = Path(f"/proc/{pid}/status").read_text()
    uids = [int(u) for u in re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()]
    root_opts = [line.split()[5] for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
                 if line.split()[4] == "/"]
    return uids, root_opts


def test_the_images_worker_scores_like_the_reference_and_answers_its_endpoints(
        image, ctx, tmp_path):
    rng = np.random.default_rng(1501)
    customers = [f"cust-{ctx.uid}-{i:03d}" for i in range(120)]
    events = h.random_events(rng, customers, 600)
    placed = h.produce(ctx.input_topic, events,
                       lambda ev: h.encode_avro(h.EVENT_SCHEMA_PATH, ev))
    expected, _ = h.expected_predictions(events, placed, h.PRIMARY_MODEL)
    port = _metrics_port()
    # the image's own schemas and model, relative to its WORKDIR /opt/streamscore
    props = ctx.props({"input.schema": f"schemas/{h.EVENT_SCHEMA_PATH.name}",
                       "output.schema": f"schemas/{h.PREDICTION_SCHEMA_PATH.name}",
                       "model.path": f"models/{h.PRIMARY_MODEL.name}",
                       "metrics.listen": f"127.0.0.1:{port}"})
    config_dir = tmp_path / "etc-streamscore"
    config_dir.mkdir()
    config_dir.chmod(0o755)  # readable by uid 10001 in the container
    h.write_properties(config_dir / "streamscore.properties", props).chmod(0o644)

    w = ImageWorker(config_dir, tmp_path / "worker.log")
    ctx.workers.append(w)
    reader = h.TopicReader(ctx.output_topic)
    try:
        reader.wait_for(len(events), timeout=90, worker=w, what="predictions")
        samples = h.wait_metrics(
            port, lambda s: h.metric(s, "streamscore_records_scored_total") == len(events),
            worker=w, what=f"{len(events)} records scored")
        assert h.http_get(port, "/healthz") == (200, "ok\n")
        deadline = time.monotonic() + 30
        while h.http_get(port, "/readyz") != (200, "ready\n"):
            assert time.monotonic() < deadline, f"/readyz: {h.http_get(port, '/readyz')}"
            time.sleep(0.2)
        pid = w.process()
        assert pid is not None, "no process of the image under scripts/image run" + w.describe()
        uids, root_opts = _process_facts(pid)
        w.stop()
        reader.drain()
    finally:
        reader.close()

    assert uids == [UID] * 4, f"the worker runs as uids {uids}, not {UID}"
    assert len(root_opts) == 1 and "ro" in root_opts[0].split(","), \
        f"the worker's root file system is mounted {root_opts}, not read-only"
    assert h.metric(samples, "streamscore_model_info", mode="primary", name="churn",
                    version="1.0.0") == 1
    assert not reader.undecodable, f"undecodable predictions: {reader.undecodable[:3]}"
    assert len(reader.records) == len(events), \
        f"{len(reader.records)} predictions for {len(events)} events"
    first, n_bad = h.score_mismatches(reader.records, expected)
    assert n_bad == 0, f"{n_bad} of {len(events)} predictions differ from the reference: {first}"
    assert ctx.dead_letters() == [], "valid events were dead-lettered"
