"""Running a study: each run as its own ``sspcmr fit`` (and ``sspcmr test``) process in its own folder,
resumable, with failures recorded instead of stopping the study.

A run folder ``<output_dir>/runs/<id>/`` holds:

* ``run.json``: the run (method, variant, subset, seed ...), the exact fit and test arguments, the labelled
  subjects and slices it trains on, and a fingerprint of its arguments;
* ``split.yaml``: the split it trains on (labelled subset drawn, vendor group filtered), reference format;
* ``logs/fit/``: TensorBoard events, LightningCLI's resolved ``config.yaml`` and ``checkpoints/last.ckpt``
  (written every epoch, so an interrupted run resumes from it), and ``checkpoints/best.ckpt`` when the study's
  ``checkpoint`` choice uses it; ``logs/test/`` likewise for the test;
* ``results/``: per-volume, clinical and slice-level test results and their summaries (``sspcmr test``);
* ``fit.log`` / ``test.log``: the processes' output; ``status.json``: ``running``, ``done`` or ``failed``
  (with the error), written atomically.

Finished runs are skipped; an interrupted fit restarts from its ``last.ckpt``; a fine-tuning whose pretraining
is not done is ``blocked``. A run whose arguments changed since it started (study file edited) is refused.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from sspcmr.data.atomic import atomic_write_bytes

from .arguments import VALIDATION_SPLIT, checkpoint, run_arguments, run_dir
from .grid import Run, find_run, study_runs
from .launch import LAUNCHERS, launch
from .locks import acquire, lock_holder
from .slice_counts import run_split
from .spec import StudyConfig, model_options


class StudyError(ValueError):
    """A study request that cannot be honoured (incomplete results, changed runs, a run busy elsewhere)."""


def _write_json(path: Path, content: dict) -> None:
    text = json.dumps(content, indent=2, default=str) + "\n"
    atomic_write_bytes(path, lambda tmp: tmp.write_text(text))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise StudyError(f"{path}: unreadable ({error}); delete it to rerun this run") from error


class StudyRunner:
    """Executes, resumes, lists and reports the runs of a study.

    Args:
        study: the parsed study file.
        launcher: ``subprocess`` (default: every run is its own ``python -m sspcmr`` process, so a
            crash or a DDP launch stays inside it) or ``inline`` (in this process; quicker, for tests).
        echo: where progress lines go.
    """

    def __init__(self, study: StudyConfig, launcher: str = "subprocess", echo: Callable[[str], None] = print) -> None:
        if launcher not in LAUNCHERS:
            raise ValueError(f"launcher must be subprocess or inline; got {launcher!r}")
        self.study, self.launcher, self.echo = study, launcher, echo
        self.runs = study_runs(study)
        self._by_id = {run.id: run for run in self.runs}

    # -- folders and states ------------------------------------------------------------------------

    def run_dir(self, run: Run) -> Path:
        return run_dir(self.study, run.id)

    def checkpoint(self, run: Run) -> Path:
        """The run's ``last.ckpt`` (what an interrupted fit resumes from)."""
        return checkpoint(self.study, run.id)

    def checkpoint_file(self, run_id: str, name: str | None) -> Path:
        """A run's ``last.ckpt`` or ``best.ckpt`` (``name``: ``last`` / ``best``; None: last)."""
        return checkpoint(self.study, run_id, name)

    def state(self, run: Run) -> str:
        """``done``, ``failed``, ``running`` (a live process holds it), ``interrupted`` (started, stopped
        before the end), ``blocked`` (its pretraining is not done) or ``pending``."""
        status = _read_json(self.run_dir(run) / "status.json").get("state")
        if status in ("done", "failed"):
            return status
        if self._lock_holder(run) is not None:
            return "running"
        if status == "running" or self.checkpoint(run).exists():
            return "interrupted"
        if run.depends_on and self.state(self._by_id[run.depends_on]) != "done":
            return "blocked"
        return "pending"

    def _lock_holder(self, run: Run) -> str | None:
        """``host:pid`` of a live process running this run (this host only; a stale lock is ignored)."""
        return lock_holder(self.run_dir(run) / ".lock")

    # -- arguments ----------------------------------------------------------------------------------

    def arguments(self, run: Run, command: str) -> list[str]:
        """The ``sspcmr fit`` / ``test`` arguments of a run (:func:`~sspcmr.study.arguments.run_arguments`), with
        the study's checkpoint choice."""
        return run_arguments(self.study, run, command)

    def fingerprint(self, run: Run) -> str:
        return hashlib.sha256(json.dumps(self.arguments(run, "fit")).encode()).hexdigest()[:16]

    # -- preparing a run ------------------------------------------------------------------------------

    def _labelled_split(self, run: Run) -> dict:
        """Write the run's split (subset drawn, vendor group kept) and count what it trains on."""
        from sspcmr.data.datamodule import CineDataModule
        from sspcmr.data.splits import Split, write_split

        split = run_split(self.study, run)
        path = write_split(split, self.run_dir(run) / "split.yaml")
        if run.lr is not None:  # the validation subjects as a test set: the rate is chosen on them
            write_split(Split(test=split.valid, train=split.train, valid=split.valid),
                        self.run_dir(run) / VALIDATION_SPLIT)
        module = CineDataModule(self.study.data_dir, str(path), mode="segment", train_phases=list(run.train_phases))
        rows = module.slice_rows("train")
        if rows.empty:
            raise StudyError(f"{run.id}: no labelled training slices (subset {run.subset}, vendors {run.vendors})")
        return {"labelled_subjects": int(rows["subject_index"].nunique()), "labelled_slices": int(len(rows))}

    def _prepare(self, run: Run) -> dict:
        folder = self.run_dir(run)
        folder.mkdir(parents=True, exist_ok=True)
        record = _read_json(folder / "run.json")
        fingerprint = self.fingerprint(run)
        if record and record.get("fingerprint") != fingerprint:
            raise StudyError(f"{folder}: this run was started with other arguments (the study file changed); "
                             "delete the folder to rerun it, or give the study another output_dir")
        if not record:
            record = {**run.as_dict(), "fingerprint": fingerprint,
                      "fit_args": self.arguments(run, "fit"),
                      "test_args": None if run.kind == "pretrain" else self.arguments(run, "test"),
                      "validation_args": self.arguments(run, "validate") if run.lr is not None else None}
            if run.kind != "pretrain":
                record.update(self._labelled_split(run))
            _write_json(folder / "run.json", record)
        return record

    # -- executing -------------------------------------------------------------------------------------

    def _launch(self, args: list[str], log: Path) -> None:
        """Run ``sspcmr <args>`` (:func:`~sspcmr.study.launch.launch`); raise with the log's tail when it fails."""
        code = launch(args, log, self.launcher)
        if code != 0:
            tail = log.read_text().strip().splitlines()[-15:]
            raise StudyError(f"`sspcmr {args[0]}` exited with {code}; the end of {log}:\n  " + "\n  ".join(tail))

    def execute(self, run: Run) -> str:
        """Run (or resume, or skip) one run; returns its final state. Failures are recorded, not raised."""
        state = self.state(run)
        if state in ("done", "blocked", "running"):
            return state
        folder = self.run_dir(run)
        folder.mkdir(parents=True, exist_ok=True)
        lock = folder / ".lock"
        if not acquire(lock):
            return "running"  # another process took it between the state check and now
        started = time.time()
        try:
            record = self._prepare(run)
            status = _read_json(folder / "status.json")
            _write_json(folder / "status.json", {"state": "running", "fitted": status.get("fitted", False),
                                                 "started": started})
            if not status.get("fitted"):
                args = list(record["fit_args"])
                if self.checkpoint(run).exists():
                    self.echo(f"  {run.id}: resuming from {self.checkpoint(run)}")
                    args += ["--ckpt_path", str(self.checkpoint(run))]
                else:
                    self._check_start(run)
                self._launch(args, folder / "fit.log")
                self._check_fitted(run)
                _write_json(folder / "status.json", {"state": "running", "fitted": True, "started": started})
            if run.kind != "pretrain":
                self._launch(record["test_args"], folder / "test.log")
            if record.get("validation_args"):
                self._launch(record["validation_args"], folder / "validation.log")
            _write_json(folder / "status.json", {"state": "done", "fitted": True, "seconds": time.time() - started})
            return "done"
        except Exception as error:  # a failed run is reported and does not stop the others
            fitted = _read_json(folder / "status.json").get("fitted", False)  # a failed test need not refit
            _write_json(folder / "status.json", {"state": "failed", "error": str(error), "fitted": fitted,
                                                 "seconds": time.time() - started})
            return "failed"
        finally:
            lock.unlink(missing_ok=True)

    def _check_start(self, run: Run) -> None:
        """Refuse to start a fine-tuning whose pretraining checkpoint is missing (``best`` not kept)."""
        source = self.checkpoint_file(run.depends_on, run.init_checkpoint) if run.kind == "finetune" else None
        if source is not None and not source.is_file():
            raise StudyError(f"{run.id}: {source} is missing: the study's checkpoint choice starts this fine-tuning "
                             f"from {run.depends_on}'s {source.name}, which its fit did not keep (run with another "
                             "checkpoint choice, or delete that pretraining's folder to rerun it keeping best.ckpt)")

    def _check_fitted(self, run: Run) -> None:
        """The checkpoints the study will use exist after the fit."""
        if not self.checkpoint(run).exists():
            raise StudyError(f"{run.id}: fit finished without {self.checkpoint(run)} "
                             "(fast_dev_run writes no checkpoint; use limit_train_batches instead)")
        best = self.checkpoint_file(run.id, "best")
        if run.keep_best and not best.exists():
            raise StudyError(f"{run.id}: fit finished without {best}, which the study's checkpoint choice uses: "
                             "was the monitored loss never logged (no validation within max_epochs)?")

    def run_one(self, key: str) -> str:
        """``sspcmr study --run ID|INDEX``: execute one run (its pretraining must be done)."""
        run = find_run(self.runs, key)
        state = self.state(run)
        if state == "blocked":
            raise StudyError(f"{run.id} needs {run.depends_on} to be done first (run the pretraining stage first)")
        if state == "running":
            raise StudyError(f"{run.id} is being run by {self._lock_holder(run)}")
        return self._report_state(run, self.execute(run))

    def _report_state(self, run: Run, state: str) -> str:
        folder = self.run_dir(run)
        status = _read_json(folder / "status.json")
        line = f"{run.id}: {state}"
        if state == "done" and (folder / "results" / "volumes.csv").is_file():
            import pandas as pd

            dice = pd.read_csv(folder / "results" / "volumes.csv")["dice_mean"].mean()
            line += f" (test Dice {dice:.3f}, {status.get('seconds', 0):.0f} s)"
        elif state == "done":
            line += f" ({status.get('seconds', 0):.0f} s)"
        elif state == "failed":
            line += f": {status.get('error', '')}"
        self.echo(line)
        return state

    def run_all(self, poll_seconds: float = 30.0) -> dict[str, str]:
        """Every run in order (finished ones skipped); returns ``{id: state}``.

        Runs held by another ``sspcmr study`` process on the same study, and fine-tunings whose pretraining that
        process is running, are waited for (polling every ``poll_seconds``), so two or more processes side by
        side share the grid and each returns when everything is finished. Every run is tried once per call.
        """
        states: dict[str, str] = {}
        source = self.study.path
        if source.is_file():  # the study file as run, next to its runs (with its base merged in)
            text = source.read_text() if self.study.merged is None else (
                f"# {source} merged into its base\n" + yaml.safe_dump(self.study.merged, sort_keys=False))
            atomic_write_bytes(self.study.output_dir / "study.yaml", lambda tmp: tmp.write_text(text))
        tried: set[str] = set()
        announced: set[str] = set()
        while True:
            waiting = False
            held: set[str] = set()
            for index, run in enumerate(self.runs):
                if run.id in tried:
                    continue
                before = self.state(run)
                if before == "done":
                    self.echo(f"[{index + 1}/{len(self.runs)}] {run.id}: done earlier, skipped")
                    states[run.id] = before
                    tried.add(run.id)
                    continue
                if before == "running" or (before == "blocked" and self._upstream_active(run)):
                    waiting = True
                    if before == "running":
                        held.add(run.id)
                    continue
                self.echo(f"[{index + 1}/{len(self.runs)}] {run.id}: {run.kind}" +
                          ("" if run.kind == "pretrain" else f" on {run.subset} labelled subjects, seed {run.seed}"))
                state = self.execute(run)
                if state == "running":  # another process took it first
                    waiting = True
                    continue
                states[run.id] = self._report_state(run, state)
                tried.add(run.id)
            if not waiting:
                return states
            if held - announced:  # say once what is waited for (a lock left by a crashed process on another
                # host keeps its run "running": delete that run's .lock to release it)
                self.echo(f"waiting for runs held by other processes: {', '.join(sorted(held))} "
                          f"(locks: {self.study.output_dir / 'runs'}/<id>/.lock)")
                announced |= held
            time.sleep(poll_seconds)

    def _upstream_active(self, run: Run) -> bool:
        """The pretraining a blocked run depends on is being run (or will be, by this or another process)."""
        upstream = self._by_id[run.depends_on] if run.depends_on else None
        return upstream is not None and self.state(upstream) in ("running", "pending", "interrupted")

    # -- listing and reporting --------------------------------------------------------------------------

    def listing(self) -> list[dict]:
        """One row per run: index, ID, kind, method, variant, subset, seed, depends_on, the checkpoint it starts
        from (``init_ckpt``, fine-tunings) and is tested with (``test_ckpt``), the model options the study sets
        for it (``options``: ``teacher_init=separate ...``) and its state."""
        return [{"index": i, "id": run.id, "kind": run.kind, "method": run.method, "variant": run.variant or "",
                 "subset": run.subset or "", "seed": run.seed, "depends_on": run.depends_on or "",
                 "init_ckpt": run.init_checkpoint or "", "test_ckpt": run.test_checkpoint or "",
                 "options": self.model_options(run), "state": self.state(run)} for i, run in enumerate(self.runs)]

    def model_options(self, run: Run) -> str:
        """The model options the study sets on the run's fit command line (:func:`~.spec.model_options`), but
        those other columns of :meth:`listing` say."""
        return " ".join(f"{name}={value}" for name, value in model_options(self.arguments(run, "fit")).items()
                        if name not in ("init_from", "transfer", "augmentation"))

    def records(self) -> tuple[list[dict], list[str]]:
        """Report records of the finished scratch and fine-tuning runs, and the IDs of unfinished runs."""
        from sspcmr.data.splits import VENDOR_GROUPS

        records, missing = [], []
        for run in self.runs:
            if self.state(run) != "done":
                missing.append(run.id)
                continue
            if run.kind == "pretrain":
                continue
            stored = _read_json(self.run_dir(run) / "run.json")
            vendors = None if run.vendors is None else list(VENDOR_GROUPS[run.vendors])
            records.append({**run.as_dict(), "vendors": vendors, "labelled_subjects": stored["labelled_subjects"],
                            "labelled_slices": stored["labelled_slices"], "dir": str(self.run_dir(run))})
        return records, missing

    def report(self, partial: bool = False) -> list[Path]:
        """Aggregate into ``<output_dir>/report/``; refuses while runs are unfinished unless ``partial``."""
        from .report import write_report

        records, missing = self.records()
        if missing and not partial:
            raise StudyError(f"{len(missing)} of {len(self.runs)} runs are not done ({', '.join(missing[:6])}"
                             f"{' ...' if len(missing) > 6 else ''}); finish them or pass --partial")
        if not records:
            raise StudyError("no finished scratch or fine-tuning runs to report")
        return write_report(records, self.study.output_dir / "report", partial=bool(missing))


__all__ = ["StudyError", "StudyRunner"]
