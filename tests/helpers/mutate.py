"""The mutation pass of docs/mutations.md: break one promise at a time in a scratch copy of
the repository, run the tests meant to catch it, and print whether they did.

    python tests/helpers/mutate.py            # every mutation
    python tests/helpers/mutate.py es-wait    # some

Each mutation is (file, text, replacement, tests[, (text, replacement)...]); the copy is
made afresh for each run and the repository itself is never changed. Prints one JSON line
per mutation: CAUGHT (a test failed), SURVIVED (all passed) or the pytest exit code.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WT = Path(__file__).resolve().parents[2]
COPY = Path(os.environ.get("MUT_DIR") or tempfile.mkdtemp(prefix="cbrun-mutations-")) / "repo"
PY = sys.executable

M = {
 "es-wait-best": ("cbrun/callbacks/early_stopping.py",
   'state_attrs = ("wait", "stopped_epoch", "best", "best_weights", "best_epoch")',
   'state_attrs = ("stopped_epoch", "best_weights", "best_epoch")',
   ["tests/test_resume_state.py::test_resume_where_callbacks_hold_state_ends_like_the_uninterrupted_run[deep-wait]"]),
 "es-wait": ("cbrun/callbacks/early_stopping.py",
   'state_attrs = ("wait", "stopped_epoch", "best", "best_weights", "best_epoch")',
   'state_attrs = ("stopped_epoch", "best", "best_weights", "best_epoch")',
   ["tests/test_resume_state.py::test_resume_where_callbacks_hold_state_ends_like_the_uninterrupted_run[deep-wait]"]),
 "es-best": ("cbrun/callbacks/early_stopping.py",
   'state_attrs = ("wait", "stopped_epoch", "best", "best_weights", "best_epoch")',
   'state_attrs = ("wait", "stopped_epoch", "best_weights", "best_epoch")',
   ["tests/test_resume_state.py::test_resume_where_callbacks_hold_state_ends_like_the_uninterrupted_run[deep-wait]"]),
 "rlrop-cooldown-wait": ("cbrun/callbacks/reduce_lr_on_plateau.py",
   'state_attrs = ("wait", "cooldown_counter", "best")', 'state_attrs = ("best",)',
   ["tests/test_resume_state.py::test_resume_where_callbacks_hold_state_ends_like_the_uninterrupted_run[cooldown]"]),
 "lr-not-restored": ("cbrun/state/capture.py",
   '''    with np.load(saved.path / "variables.npz") as data:
        for i, variable in enumerate(model.variables):''',
   '''    lr0 = np.asarray(model.optimizer.learning_rate)
    with np.load(saved.path / "variables.npz") as data:
        for i, variable in enumerate(model.variables):''',
   ["tests/test_resume_state.py::test_resume_where_callbacks_hold_state_ends_like_the_uninterrupted_run[cooldown]"],
   ('''    random.setstate(_tuple_deep(meta["python_random"]))''',
    '''    model.optimizer.learning_rate.assign(lr0)
    random.setstate(_tuple_deep(meta["python_random"]))''')),
 "no-spare": ("cbrun/state/files.py", "KEEP = 2  #", "KEEP = 1  #",
   ["tests/test_resume_state.py::test_a_spare_state_is_kept_and_used_when_the_newest_is_damaged_inside"]),
 "spare-never-used": ("cbrun/state/files.py",
   '''            warn(f"warning: saved state {path} is damaged ({exc}); trying the one before it")
            continue''',
   '''            warn(f"warning: saved state {path} is damaged ({exc}); trying the one before it")
            return None''',
   ["tests/test_resume_state.py::test_a_spare_state_is_kept_and_used_when_the_newest_is_damaged_inside"]),
 "checksums-not-checked": ("cbrun/state/files.py", "def state_problem(path: Path) -> str | None:\n",
   "def state_problem(path: Path) -> str | None:\n    return None\n",
   ["tests/test_resume_state.py::test_a_spare_state_is_kept_and_used_when_the_newest_is_damaged_inside"]),
 "prune-keeps-highest": ("cbrun/state/files.py",
   '''    kept = [p for p in states if state_position(p) <= position]''',
   '''    kept = states''',
   ["tests/test_resume_state.py::test_all_states_damaged_restarts_cleanly_and_pruning_keeps_the_fresh_ones"],
   ('''        if state_position(path) > position:''',
    '''        if False:''')),
 "runjson-before-state": ("cbrun/state/writer.py",
   "            write_state(run_dir, state)\n", "",
   ["tests/test_resume.py::test_a_kill_inside_the_state_write_leaves_the_previous_state_whole"],
   ("                    then()\n", "                    then()\n            write_state(run_dir, state)\n")),
 "settle-off": ("cbrun/run/segment.py",
   '''    done = newest_state_epoch(record.run_dir)
    if record.epochs_done > done:''',
   '''    done = record.epochs_done
    if record.epochs_done > done:''',
   ["tests/test_run_faults.py"]),
 "order-same-every-epoch": ("cbrun/engine/data.py",
   "return np.random.default_rng([seed, epoch]).permutation(n)",
   "return np.random.default_rng([seed, 0]).permutation(n)",
   ["tests/test_data_order.py::test_the_order_is_a_pure_function_of_seed_and_epoch",
    "tests/test_data_order.py::test_the_training_batches_follow_the_order_and_shuffle_false_keeps_file_order"]),
 "shuffle-false-shuffles": ("cbrun/engine/data.py",
   "        return np.arange(n, dtype=np.int64)",
   "        return np.random.default_rng([seed]).permutation(n).astype(np.int64)",
   ["tests/test_data_order.py::test_the_order_is_a_pure_function_of_seed_and_epoch",
    "tests/test_data_order.py::test_the_training_batches_follow_the_order_and_shuffle_false_keeps_file_order"]),
 "terminal-best-off-by-one": ("cbrun/plotting/terminal.py",
   "stars.append((epoch, math.log10", "stars.append((epoch + 1, math.log10",
   ["tests/test_plot_marks.py"]),
 "png-best-off-by-one": ("cbrun/plotting/figure.py",
   "ax.plot([epoch], [value], linestyle", "ax.plot([epoch + 1], [value], linestyle",
   ["tests/test_plot.py"]),
 "nan-guard-off": ("cbrun/engine/callbacks/own.py",
   "        if loss is not None and not math.isfinite(float(loss)):\n            self.epoch",
   "        if False:\n            self.epoch",
   ["tests/test_run_faults.py::test_a_loss_that_becomes_nan_fails_the_run_without_terminate_on_nan"]),
 "checkpoint-check-off": ("cbrun/engine/callbacks/checkpoint.py",
   '        return check_inside(self._run_dir, path, "ModelCheckpoint filepath")',
   '        return path',
   ["tests/test_hostile_run.py::test_a_link_planted_while_training_stops_the_checkpoint",
    "tests/test_hostile_config.py"]),
 "link-check-off": ("cbrun/run/runguard.py",
   "        names = sorted(dirs) + sorted(files)\n", "        names = []\n",
   ["tests/test_hostile_run.py::test_a_link_planted_in_a_run_is_never_written_through"]),
 "signal-never-stops": ("cbrun/run/segment.py",
   "    if _requested:\n        return _requested[0]",
   "    if False:\n        return _requested[0]",
   ["tests/test_signals.py::test_a_signal_inside_the_state_write_lets_it_finish_and_stops_after_that_epoch"]),
 "second-signal-waits": ("cbrun/run/segment.py",
   "                if seen >= 2:", "                if seen >= 99:",
   ["tests/test_signals.py::test_a_second_signal_stops_at_once_even_inside_the_tensorflow_import"]),
 "state-write-not-atomic": ("cbrun/state/files.py",
   '''    tmp = root / f".tmp-{final.name}-{os.getpid()}"''',
   '''    tmp = final''',
   ["tests/test_resume.py::test_a_kill_inside_the_state_write_leaves_the_previous_state_whole"],
   ('''    os.rename(tmp, final)''', '''    pass''')),
}

M.update({  # added with the tests of issue 10
 "png-not-thinned": ("cbrun/plotting/figure.py",
   "    if len(x) <= most:\n        return x, y", "    if True:\n        return x, y",
   ["tests/test_hostile_plot.py::test_png_drawing_of_a_long_log_keeps_what_a_panel_shows_and_costs_per_pixel"]),
 "runguard-off-while-training": ("cbrun/engine/callbacks/own.py",
   '        check_tree(self.run_dir, shallow=self.shallow)', '        pass',
   ["tests/test_hostile_run.py::test_a_link_planted_while_training_is_never_written_through"]),
    # With OLD_TEST=8468cef:tests/test_resume_state.py: the test before issue 10's fix.
 "es-wait-best-old-test": M["es-wait-best"],
})

M.update({  # issue 22: sweeps
 "sweep-not-bound": ("cbrun/sweep/study.py",
   '        if trial_ids:\n            raise UsageError(lost.format("does not exist"))',
   '        if False:\n            raise UsageError(lost.format("does not exist"))',
   ["tests/test_sweep_bound.py::test_a_sweep_resumed_against_another_storage_is_refused",
    "tests/test_sweep_bound.py::test_a_study_made_anew_under_the_same_name_is_refused"],
   ('        if trial_ids:\n            raise UsageError(lost.format("does not know',
    '        if False:\n            raise UsageError(lost.format("does not know'),
   ("    if ours and found not in ours:", "    if False:")),
 "sweep-trial-dir-any-id": ("cbrun/sweep/directory.py",
   "if sweep is not None and sweep.id == sweep_id and sweep.trial == number:",
   "if sweep is not None and sweep.trial == number:",
   ["tests/test_sweep_bound.py::test_a_trial_directory_of_another_sweep_is_never_taken_as_a_result"]),
 "sweep-value-last-epoch": ("cbrun/sweep/driver.py",
   "    return None if found is None else float(found[1])",
   "    return None if found is None else float(log.values[metric][-1])",
   ["tests/test_sweep_bound.py::test_a_trials_value_is_its_best_epoch_not_its_last"]),
 "sweep-retry-own-run-dir": ("cbrun/sweep/driver.py",
   "        run_dir = trial_run_dir(self.dir, first, self.id)\n        status",
   "        run_dir = trial_run_dir(self.dir, trial.number, self.id)\n        status",
   ["tests/test_sweep_bound.py::test_ctrl_c_stops_the_sweep_and_resume_goes_on_in_the_trials_own_run_directory"]),
})


M.update({  # issue 21: data check
 "datacheck-other-seed": ("cbrun/data/check.py",
   "report = _dispatch(data.source, files, data, config.seed, data)",
   "report = _dispatch(data.source, files, data, DEFAULT_SEED, data)",
   ["tests/test_data_check.py::test_the_split_is_the_runs_own_draw_with_the_configs_seed"]),
 "datacheck-leak-blind": ("cbrun/data/duplicates.py",
   "        in_train[first[train.rows]] = True", "        in_train[first[train.rows]] = False",
   ["tests/test_data_check.py::test_rows_shared_by_training_and_validation_are_named_by_their_lines"]),
 "datacheck-constant-blind": ("cbrun/data/columns.py",
   '"constant": distinct == 1 and not missing and len(column) > 1,', '"constant": False,',
   ["tests/test_data_check.py::test_a_constant_feature_is_named_and_an_unused_one_is_not"]),
 "datacheck-corrupt-blind": ("cbrun/data/images_report.py",
   "            problem = image_problem(path)", "            problem = None",
   ["tests/test_data_check.py::test_a_corrupt_image_is_named_and_skipped_files_counted"]),
 "datacheck-no-split-warnings": ("cbrun/data/table_check.py",
   '        findings += [{"kind": "split", "message": line} for line in lines]',
   "        findings += []",
   ["tests/test_data_check.py::test_a_class_missing_from_validation_is_named"]),
 "text-classes-unsorted": ("cbrun/data/splits.py",
   "    rank[order] = np.arange(len(order))", "    rank = np.arange(len(order))",
   ["tests/test_data_check.py::test_text_classes_are_counted_as_numpy_counts_them"]),
})


M.update({  # issue 22: data that fails late, fingerprints and names
 "png-crc-unchecked": ("cbrun/config/data/images.py",
   "            return _png_problem(handle)\n", "            return None\n",
   ["tests/test_data_late.py::test_a_png_damaged_inside_is_named_by_validate"]),
 "class-split-unchecked": ("cbrun/config/data/images.py",
   "                          for message in self._split_problems(value, names, files, seed)]",
   "                          for message in []]",
   ["tests/test_data_late.py::test_a_class_left_without_training_images_is_found_by_validate"]),
 "test-decode-fails-run": ("cbrun/engine/session.py",
   "        except RunError as exc:  # a test image", "        except ZeroDivisionError as exc:  #",
   ["tests/test_data_late.py::test_a_test_image_that_fails_to_decode_keeps_the_trained_run"]),
 "decode-scan-blind": ("cbrun/engine/sources/images.py",
   "    return [i for i in range(len(files)) if i not in good]", "    return []",
   ["tests/test_data_late.py::test_a_test_image_that_fails_to_decode_keeps_the_trained_run",
    "tests/test_data_errors.py::test_an_image_damaged_inside_is_named_when_it_fails_to_decode"]),
 "csv-rows-unscanned": ("cbrun/data/tables.py",
   "    found = row_problem(path, delimiter)\n", "    found = None\n",
   ["tests/test_data_late.py::test_a_csv_that_breaks_after_the_first_block_is_one_line_with_its_line"]),
 "csv-late-text-allowed": ("cbrun/data/tables.py",
   "    late = late_problem(path, table, delimiter, decimal, columns)", "    late = None",
   ["tests/test_data_late.py::test_a_csv_that_breaks_after_the_first_block_is_one_line_with_its_line[text-in-numbers]"]),
 "loader-none-train": ("cbrun/engine/sources/python.py",
   '    if result["train"] is None:', "    if False:",
   ["tests/test_data_late.py::test_what_a_loader_returns_is_checked_before_the_first_epoch"]),
 "loader-ragged-traceback": ("cbrun/engine/sources/python.py",
   "    except ValueError:  # numpy refuses rows", "    except ZeroDivisionError:  #",
   ["tests/test_data_late.py::test_what_a_loader_returns_is_checked_before_the_first_epoch"]),
 "loader-endless-evaluation": ("cbrun/engine/sources/python.py",
   '    if name != "train" and value.cardinality() == tf.data.INFINITE_CARDINALITY:',
   "    if False:",
   ["tests/test_data_late.py::test_an_endless_evaluation_dataset_is_refused_before_the_first_epoch[test]"]),
 "loader-raises-traceback": ("cbrun/engine/sources/python.py",
   "    except Exception as exc:  # the loader's own failure", "    except ZeroDivisionError as exc:  #",
   ["tests/test_data_late.py::test_what_a_loader_returns_is_checked_before_the_first_epoch"]),
 "init-late-columns-unchecked": ("cbrun/commands/init/tables.py",
   "        if late:  # a column typed", "        if False:  #",
   ["tests/test_data_late.py::test_a_csv_that_breaks_after_the_first_block_is_one_line_with_its_line[not-utf8]"]),
 "test-eval-ignores-sigterm": ("cbrun/engine/session.py",
   "callbacks=[own.SafeStop()]", "callbacks=[]",
   ["tests/test_data_late.py::test_an_endless_test_dataset_stops_at_the_first_sigterm"]),
 "archive-config-unchecked": ("cbrun/config/model/saved.py",
   '            config = _config_problem(archive.read("config.json"))', "            config = None",
   ["tests/test_models.py::test_a_damaged_model_archive_is_named_by_validate"]),
 "archive-load-traceback": ("cbrun/engine/model/saved.py",
   "    except Exception as exc:  # a damaged archive", "    except ZeroDivisionError as exc:  #",
   ["tests/test_models.py::test_an_archive_keras_cannot_load_is_one_line_at_model_path"]),
 "fingerprint-own-listing": ("cbrun/data/fingerprint.py",
   "else _folder(data.folder_files(path), path, hashes))",
   'else _folder(sorted(p for p in path.rglob("*") if p.is_file()), path, hashes))',
   ["tests/test_resume_data.py::test_an_image_folder_is_fingerprinted_by_what_training_reads"]),
 "fingerprint-by-size": ("cbrun/data/fingerprint.py",
   "as_posix()}\\0{sha}\\n", "as_posix()}\\0{size}\\n",
   ["tests/test_resume_data.py::test_an_image_folder_is_fingerprinted_by_what_training_reads"]),
 "fingerprint-cache-mtime-only": ("cbrun/data/fingerprint.py",
   "str(s.st_mtime_ns), str(s.st_ctime_ns))", 'str(s.st_mtime_ns), "0")',
   ["tests/test_resume_data.py::test_an_image_folder_is_fingerprinted_by_what_training_reads"]),
 "fingerprint-old-runs-rehashed": ("cbrun/data/fingerprint.py",
   '(_listing(path) if old.get(field, "").startswith("listing sha256")',
   "(_listing(path) if False",
   ["tests/test_resume_data.py::test_an_image_folder_is_fingerprinted_by_what_training_reads"]),
 "hw-swap-shape-check": ("cbrun/config/data/images.py",
   "        return [*self.image_size, self.channels]",
   "        return [*self.image_size[::-1], self.channels]",
   ["tests/test_data_sources.py::test_a_non_square_image_size_keeps_height_and_width_everywhere"]),
 "hw-swap-decode": ("cbrun/engine/sources/decode.py",
   "    image = tf.image.resize(image, size)", "    image = tf.image.resize(image, size[::-1])",
   ["tests/test_data_sources.py::test_a_non_square_image_size_keeps_height_and_width_everywhere"]),
 "hw-swap-disk-cache": ("cbrun/engine/sources/decode.py",
   "    return tf.reshape(pixels, (*files.size, files.channels))",
   "    return tf.reshape(pixels, (*files.size[::-1], files.channels))",
   ["tests/test_data_sources.py::test_a_non_square_image_size_keeps_height_and_width_everywhere"]),
 "hw-swap-predict": ("cbrun/engine/inputs.py",
   "tuple(cfg.image_size), cfg.channels)", "tuple(cfg.image_size[::-1]), cfg.channels)",
   ["tests/test_data_sources.py::test_a_non_square_image_size_keeps_height_and_width_everywhere"]),
})


M.update({  # issues 21 and 24: splits, baselines, init's YAML, the state inside an epoch
 "split-stratified-random": ("cbrun/data/splits.py",
   "        order = np.lexsort((keys, codes))", "        order = rng.permutation(n)",
   ["tests/test_splits.py::test_a_stratified_split_gives_every_class_its_share_to_within_a_row"]),
 "older-runs-drawn": ("cbrun/config/data/__init__.py",
   '    if "split" not in value:', "    if False:",
   ["tests/test_splits.py::test_a_run_without_split_in_its_resolved_yaml_reads_the_rows_it_trained_on"]),
 "split-missing-class-unsaid": ("cbrun/data/balance.py",
   "        if missing:", "        if False:",
   ["tests/test_splits.py::test_tail_on_a_sorted_csv_warns_at_validate_and_at_the_runs_start"]),
 "baseline-uniform-prior": ("cbrun/engine/baseline.py",
   "        prior = counts[:shape[-1]] / max(1, counts.sum())",
   "        prior = np.full(shape[-1], 1 / shape[-1])",
   ["tests/test_first_model.py::test_an_imbalanced_tables_baseline_predicts_the_training_shares"]),
 "verdict-never-said": ("cbrun/run/record.py",
   "        if better:\n            return None", "        if True:\n            return None",
   ["tests/test_first_model.py::test_a_model_that_learns_nothing_is_said_to_be_no_better_than_its_baseline"]),
 "init-comment-unescaped": ("cbrun/commands/init/document.py",
   '        if char in _BREAKS or unicodedata.category(char)[0] == "C":',
   "        if False:",
   ["tests/test_init_cmd.py::test_hostile_class_folder_names_are_written_as_comments_only"]),
 "targets-not-adapted": ("cbrun/engine/adapt.py",
   "    for layer, feed in [*feeds, *_target_feeds(model, config, train)]:",
   "    for layer, feed in feeds:",
   ["tests/test_first_model.py::test_inits_regression_beats_the_mean_by_a_wide_margin_on_rows_it_never_saw"]),
 "epoch-metrics-not-restored": ("cbrun/engine/callbacks/keeper.py",
   "            restore_metrics(self.restore, self.model)\n", "",
   ["tests/test_long_runs.py::test_a_run_killed_at_any_batch_resumes_to_the_uninterrupted_run"]),
 "partial-epoch-from-its-start": ("cbrun/engine/data.py",
   "    rows = start * batch_size  # the epoch's samples already trained",
   "    rows = 0",
   ["tests/test_long_runs.py::test_a_streamed_image_folder_resumes_inside_an_epoch_exactly"]),
 "partial-array-epoch-from-its-start": ("cbrun/engine/data.py",
   "        now = order.read_value()[start * batch_size:]",
   "        now = order.read_value()",
   ["tests/test_long_runs.py::test_a_run_killed_at_any_batch_resumes_to_the_uninterrupted_run"]),
 "first-fit-ends-the-callbacks": ("cbrun/engine/session.py",
   'relay={"offset": start, "steps": steps, "end": False})',
   'relay={"offset": start, "steps": steps, "end": True})',
   ["tests/test_long_runs.py::test_a_run_killed_at_any_batch_resumes_to_the_uninterrupted_run"]),
 "stop-without-a-state": ("cbrun/engine/callbacks/keeper.py",
   "        if stop or by_clock or by_batches:", "        if by_clock or by_batches:",
   ["tests/test_long_runs.py::test_sigterm_saves_the_state_at_the_next_batch_and_exits_75"]),
})

# Issue 27: configs made of several files.
M.update({
 "compose-earlier-wins": ("cbrun/config/compose.py",
   "        into[key] = copy.deepcopy(value)\n", "        into.setdefault(key, copy.deepcopy(value))\n",
   ["tests/test_compose.py::test_cbrun_config_show_prints_each_value_with_where_it_came_from"]),
 "compose-one-file-named": ("cbrun/config/compose.py",
   "            positions.sources[known] = file", "            positions.sources[known] = positions.file",
   ["tests/test_compose.py::test_each_mistake_is_reported_at_the_file_and_line_that_set_it"]),
 "compose-whole-reference-as-text": ("cbrun/config/compose.py",
   "        whole = _REFERENCE.fullmatch(value)", "        whole = None",
   ["tests/test_compose.py::test_cbrun_config_show_prints_each_value_with_where_it_came_from"]),
 "compose-no-cycle-check": ("cbrun/config/compose.py",
   "    if target in seen or target == loc:", "    if False:",
   ["tests/test_compose.py::test_a_reference_to_a_section_or_to_itself_is_an_error_at_its_line"]),
 "compose-said-twice": ("cbrun/config/compose.py",
   "                           if not any(tuple(p.loc[:len(loc)]) == loc for loc in places)]]",
   "                           ]]",
   ["tests/test_compose.py::test_a_reference_to_a_section_or_to_itself_is_an_error_at_its_line"]),
 "compose-references-before-set": ("cbrun/config/load.py",
   "    if overrides:\n        loaded = apply_overrides(loaded, overrides)\n    loaded, unresolved = interpolate(loaded)",
   "    loaded, unresolved = interpolate(loaded)\n    if overrides:\n        loaded = apply_overrides(loaded, overrides)",
   ["tests/test_compose.py::test_each_mistake_is_reported_at_the_file_and_line_that_set_it"]),
 "compose-extends-unread": ("cbrun/config/load.py",
   "    if len(paths) > 1 or EXTENDS in loaded.data:", "    if len(paths) > 1:",
   ["tests/test_compose.py::test_extends_in_a_circle_or_to_a_missing_file_is_named"]),
})


def sync():
    if COPY.exists():
        shutil.rmtree(COPY)
    COPY.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(WT, COPY, ignore=shutil.ignore_patterns(".git", "__pycache__", ".venv"))
    if os.environ.get("OLD_TEST"):  # a test file as a commit had it: OLD_TEST=REV:PATH
        rev, path = os.environ["OLD_TEST"].split(":", 1)
        (COPY / path).write_text(subprocess.run(
            ["git", "-C", str(WT), "show", f"{rev}:{path}"], capture_output=True,
            text=True, check=True).stdout)

def _other_paths() -> list[str]:
    """PYTHONPATH's entries besides the work tree (packages installed beside the venv, as
    JAX in a folder of its own), kept for the copy's tests."""
    return [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
            if p and Path(p).resolve() != WT.resolve()]


def main() -> None:
    names = sys.argv[1:] or list(M)
    sync()
    for name in names:
        path, old, new, tests, *more = M[name]
        f = COPY / path
        orig = f.read_text()
        text = orig
        for a, b in [(old, new), *more]:
            assert text.count(a) == 1, (name, a)
            text = text.replace(a, b)
        f.write_text(text)
        t0 = time.time()
        r = subprocess.run([PY, "-m", "pytest", *tests, "-x", "-q", "-p", "no:cacheprovider"],
                           cwd=COPY, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                               [str(COPY), *_other_paths()])},
                           capture_output=True, text=True, check=False)
        f.write_text(orig)
        verdict = {0: "SURVIVED", 1: "CAUGHT"}.get(r.returncode, f"rc={r.returncode}")
        failed = [line for line in r.stdout.splitlines() if line.startswith("FAILED")][:2]
        print(json.dumps({"mutation": name, "verdict": verdict, "tests": tests,
                          "failed": failed, "seconds": round(time.time() - t0)}), flush=True)


M.update({  # issue 22: after-training commands on real-world runs
 "export-diff-signed": ("cbrun/engine/exportcheck.py",
   "diff = np.abs(value.astype(np.float64) - reference) / np.maximum(1.0, np.abs(reference))",
   "diff = (value.astype(np.float64) - reference) / np.maximum(1.0, np.abs(reference))",
   ["tests/test_export.py::test_the_difference_is_taken_both_ways"]),
 "state-read-at-load": ("cbrun/engine/runmodel.py", "    state = checkpoint.state\n",
   "    state = None\n",
   ["tests/test_runmodel.py::test_a_state_pruned_after_it_was_chosen_still_loads"]),
 "own-lambda-refused": ("cbrun/run/checkpoints.py",
   "safe_mode=safe_mode and not (own and runs_code)", "safe_mode=safe_mode",
   ["tests/test_after_training.py::test_a_lambda_factory_runs_own_model_files_load"]),
 "any-file-trusted": ("cbrun/run/checkpoints.py",
   "safe_mode=safe_mode and not (own and runs_code)", "safe_mode=safe_mode and not runs_code",
   ["tests/test_after_training.py::test_safe_mode_false_in_a_config_trusts_only_the_runs_own_files"]),
 "model-file-unchecked": ("cbrun/run/checkpoints.py",
   "    problem = (model_file_problem if", "    problem = None and (model_file_problem if",
   ["tests/test_runmodel.py::test_a_damaged_model_file_is_one_line_naming_it"]),
 "input-fit-unchecked": ("cbrun/engine/inputs.py",
   "    problems = file_problems(name, split, run.config, model)\n",
   "    problems = []\n",
   ["tests/test_after_training.py::test_an_array_file_that_does_not_fit_the_model_is_one_line"]),
 "text-column-unchecked": ("cbrun/engine/inputs.py",
   "    _numbers_where_trained(table, artifacts, path, wanted, cfg.source)\n", "",
   ["tests/test_after_training.py::test_a_table_that_does_not_fit_the_run_is_one_line"]),
 "hidden-files-predicted": ("cbrun/engine/inputs.py",
   "files = [path] if path.is_file() else image_files(path)",
   "files = [path] if path.is_file() else sorted(p for p in path.rglob('*') if p.suffix in EXTENSIONS)",
   ["tests/test_after_training.py::test_predict_on_a_folder_skips_hidden_files_as_training_does"]),
 "o-replaces-silently": ("cbrun/run/outpath.py", "    if path.exists() and not force:\n",
   "    if False:\n",
   ["tests/test_after_training.py::test_predict_never_replaces_a_file_without_force"]),
 "o-into-run-files": ("cbrun/run/runfiles.py", "    run_dir = run_directory_of(path)\n",
   "    run_dir = None\n",
   ["tests/test_after_training.py::test_no_output_goes_over_or_into_a_runs_own_files"]),
 "o-writability-unchecked": ("cbrun/run/outpath.py",
   'tempfile.mkstemp(prefix=".cbrun-probe-", dir=folder)', 'tempfile.mkstemp(prefix=".cbrun-probe-")',
   ["tests/test_after_training.py::test_an_unwritable_output_is_one_line_before_the_model_loads"]),
 "json-stdout-shared": ("cbrun/commands/evaluate.py",
   "    with contextlib.redirect_stdout(sys.stderr):\n        result = _evaluate(",
   "    with contextlib.nullcontext():\n        result = _evaluate(",
   ["tests/test_after_training.py::test_a_lambda_factory_runs_own_model_files_load"]),
})


M.update({  # issue 22: tracking, user imports, tests that depend on the machine
 "store-check-off": ("cbrun/tracking/stores.py",
   "    missing = _driver_missing(uri)\n",
   "    return None\n    missing = _driver_missing(uri)\n",
   ["tests/test_tracking.py::test_a_store_that_cannot_be_opened_is_refused_before_training"]),
 "server-probe-off": ("cbrun/tracking/stores.py",
   "    if scheme not in _PORTS or not host:",
   "    if True:",
   ["tests/test_tracking.py::test_a_tracking_server_that_fails_at_the_start_costs_one_line_not_the_run[refuses]"]),
 "engine-tries-unbounded": ("cbrun/tracking/mlflow_sink.py",
   "        utils.MAX_RETRY_COUNT = 1", "        utils.MAX_RETRY_COUNT = saved",
   ["tests/test_tracking.py::test_a_database_server_that_fails_is_tried_once"]),
 "mlflow-log-open": ("cbrun/tracking/mlflow_sink.py",
   "            logger.setLevel(logging.CRITICAL + 1)", "            pass",
   ["tests/test_tracking.py::test_a_store_that_breaks_mid_run_costs_a_warning_not_the_run"]),
 "wandb-link-left-on-failed-init": ("cbrun/tracking/wandb_sink.py",
   "        finally:\n            # wandb-core links its log",
   "        except Exception:\n            raise\n        else:\n            # wandb-core links its log",
   ["tests/test_tracking.py::test_a_tracking_server_that_fails_at_the_start_costs_one_line_not_the_run"]),
 "track-fallback-resends-last": ("cbrun/tracking/child.py",
   "range(1, (t.state.last_epoch or 0) + 1))",
   "range(1, (t.state.last_epoch or 0)))",
   ["tests/test_tracking.py::test_a_resume_that_cannot_ask_the_trackers_goes_by_its_count_or_lists_the_epochs"]),
 "wandb-epoch-off-by-one": ("cbrun/tracking/wandb_sink.py",
   '{**metrics, "epoch": step}', '{**metrics, "epoch": step - 1}',
   ["tests/test_tracking.py::test_wandb_epoch_is_the_step"]),
 "track-ask-fails-unlisted": ("cbrun/tracking/child.py",
   "        if t.down:\n            return False, {}, None",
   "        if t.down:\n            return None, {}, None",
   ["tests/test_tracking.py::test_a_resume_that_cannot_ask_the_trackers_goes_by_its_count_or_lists_the_epochs"]),
 "syspath-left-changed": ("cbrun/callbacks/imports.py",
   "        if sys.path and sys.path[0] == entry:\n            del sys.path[0]\n        elif entry in sys.path:",
   "        if False:\n            pass\n        elif False:",
   ["tests/test_user_imports.py"]),
 "modules-shared-across-folders": ("cbrun/callbacks/imports.py",
   "    _forget_other_folders(folder, name)\n    before", "    before",
   ["tests/test_user_imports.py::test_each_config_gets_its_own_folders_modules_and_the_path_stays_as_it_was"]),
 "store-from-current-folder": ("cbrun/tracking/mlflow_sink.py",
   "            return absolute_uri(given, self.config_dir)", "            return given",
   ["tests/test_tracking.py::test_a_relative_store_is_next_to_the_config_whatever_folder_trains_or_resumes"]),
 "validate-store-from-current-folder": ("cbrun/config/tracking.py",
   "store_problem(absolute_uri(uri, folder.absolute()))",
   "store_problem(absolute_uri(uri, Path.cwd()))",
   ["tests/test_tracking.py::test_validate_checks_a_relative_store_where_the_run_will_open_it"]),
})


M.update({  # issue 24: checkpoints kept on purpose (keep_best / keep_last)
 "retention-keeps-the-worst": ("cbrun/callbacks/model_checkpoint.py",
   "key=lambda i: (self.kept[i][2] if lower_is_better else -self.kept[i][2], i))",
   "key=lambda i: (self.kept[i][2] if not lower_is_better else -self.kept[i][2], i))",
   ["tests/test_retention.py::test_a_50_epoch_run_keeps_its_best_3_and_its_last_file"]),
 "retention-record-not-restored": ("cbrun/callbacks/model_checkpoint.py",
   "            retention.restore(record)", "            retention.restore(None)",
   ["tests/test_retention.py::test_a_resumed_run_keeps_the_files_an_uninterrupted_one_keeps"]),
 "retention-deletes-at-once": ("cbrun/callbacks/model_checkpoint.py",
   "            if epoch is not None and (left >= epoch or (oldest_state is not None",
   "            if False and (left >= epoch or (oldest_state is not None",
   ["tests/test_retention.py::test_every_file_a_saved_state_keeps_is_still_there_after_a_kill"]),
 "retention-rewind-keeps-stale": ("cbrun/callbacks/model_checkpoint.py",
   "        if not self.retains:\n            return 0\n        record = (",
   "        if True:\n            return 0\n        record = (",
   ["tests/test_retention.py::test_a_resume_that_goes_another_way_leaves_nothing_stale"]),
 "retention-end-leaves-waiting": ("cbrun/engine/callbacks/checkpoint.py",
   "            self.retention.delete(None, None)", "            pass",
   ["tests/test_retention.py::test_a_50_epoch_run_keeps_its_best_3_and_its_last_file"]),
})


M.update({  # issue 22: sweep resume order
 "sweep-new-trial-while-doubtful": ("cbrun/sweep/driver.py",
   "        return bool(self.unqueued or self.doubtful)",
   "        return bool(self.unqueued)",
   ["tests/test_sweep_run.py::test_resume_ends_with_exactly_the_trials_asked_none_run_twice"]),
 "sweep-unqueued-retry-not-owed": ("cbrun/sweep/driver.py",
   "                or trial.number in queued)",
   "                or True)",
   ["tests/test_sweep_run.py::test_a_trial_failed_without_its_retry_queued_is_retried_before_any_new_one"]),
})

M.update({  # issue 27: quantized export, benchmark, export's log lines
 "quantize-metric-not-judged": ("cbrun/engine/export.py",
   "        if over:\n            failed.append(f\"output {theirs.output} {said}\")",
   "        if False:\n            failed.append(f\"output {theirs.output} {said}\")",
   ["tests/test_export_quantize.py::test_an_int8_model_that_lost_its_accuracy_fails_by_the_metric"]),
 "export-converter-logs-shown": ("cbrun/engine/export.py",
   "with warnings.catch_warnings(), held_stderr(show):",
   "with warnings.catch_warnings(), held_stderr(True):",
   ["tests/test_export_quantize.py::test_an_export_prints_no_tensorflow_log_lines"]),
 "benchmark-int8-row-unquantized": ("cbrun/run/exports.py",
   '"litert-int8": ("litert", "int8", "model-int8.tflite"),',
   '"litert-int8": ("litert", None, "model-int8.tflite"),',
   ["tests/test_benchmark.py::test_json_and_keep"]),
})


M.update({  # issue 27: lr-find
 "lrfind-rate-not-set": ("cbrun/engine/lrfind.py",
   "                model.optimizer.learning_rate = rate\n", "",
   ["tests/test_lrfind.py::test_the_sweep_sets_each_batch_rate_and_stops_where_the_loss_diverges"]),
 "lrfind-steepest-rise": ("cbrun/plotting/lrcurve.py",
   "            if slope < steepest:", "            if slope > steepest:",
   ["tests/test_lrfind.py::test_the_suggestion_is_where_the_loss_falls_fastest_not_a_lagging_average_of_it"]),
 "lrfind-lagging-curve": ("cbrun/plotting/lrcurve.py",
   "        return centred(self.losses, max(2, len(self.losses) // 40))",
   "        s = Smoother()\n        return [s.add(v) for v in self.losses]",
   ["tests/test_lrfind.py::test_the_suggestion_is_where_the_loss_falls_fastest_not_a_lagging_average_of_it"]),
})


M.update({  # issue 27: runs lists sweep trials
 "runs-trials-never-found": ("cbrun/run/runinfo.py",
   "        found += [p for p in level if (p / SWEEP_JSON).is_file()]",
   "        found += []",
   ["tests/test_runs_cmd.py::test_sweep_trials_are_named_and_listed_with_trials"]),
 "runs-trial-number-lost": ("cbrun/run/runinfo.py",
   "        trial=file.sweep.trial if file.sweep else None,", "",
   ["tests/test_runs_cmd.py::test_sweep_trials_are_named_and_listed_with_trials"]),
})


M.update({  # issue 27: predict --keep and Parquet
 "predict-keep-dropped": ("cbrun/engine/predict.py",
   "    return {**columns, **kept, **predicted_columns}, raw, inputs",
   "    return {**columns, **predicted_columns}, raw, inputs",
   ["tests/test_after_training.py::test_predict_keeps_chosen_columns_in_csv_and_parquet"]),
 "predict-parquet-written-as-csv": ("cbrun/engine/predict.py",
   '    if suffix == ".parquet":', "    if False:",
   ["tests/test_after_training.py::test_predict_keeps_chosen_columns_in_csv_and_parquet"]),
 "predict-kept-types-lost": ("cbrun/engine/predict.py",
   "        return pa.array(listed if listed is not None else values)",
   "        return pa.array([None if v is None else str(v) for v in values.tolist()])",
   ["tests/test_after_training.py::test_predict_keeps_chosen_columns_in_csv_and_parquet"]),
})


M.update({  # issue 27: debug runs, optimizer options, validate --build
 "debug-dev-run-whole-epoch": ("cbrun/commands/train.py",
   "quiet=quiet, argv=argv, debug=debug, dev_batches=1)",
   "quiet=quiet, argv=argv, debug=debug, dev_batches=None)",
   ["tests/test_debug_runs.py::test_a_fast_dev_run_goes_through_every_callback_and_keeps_nothing"]),
 "debug-dev-run-summary": ("cbrun/run/segment.py",
   "    if summary:\n        console.print(summary_table",
   "    if True:\n        console.print(summary_table",
   ["tests/test_debug_runs.py::test_a_fast_dev_run_goes_through_every_callback_and_keeps_nothing"]),
 "debug-overfit-validates-elsewhere": ("cbrun/engine/session.py",
   "            splits.validation = Split(x=train.x, y=train.y, dataset=train.dataset)",
   "            splits.validation = splits.validation",
   ["tests/test_debug_runs.py::test_two_overfit_batches_are_learned_to_a_training_accuracy_of_one"]),
 "debug-validation-steps-ignored": ("cbrun/engine/session.py",
   "    if config.fit.validation_steps and splits.validation is not None",
   "    if False and splits.validation is not None",
   ["tests/test_debug_runs.py::test_validation_steps_validates_on_the_first_batches_only"]),
 "fraction-not-stratified": ("cbrun/data/splits.py",
   ("    codes = class_codes(labels)\n    if codes is None or len(codes) != n:\n"
   "        return np.sort(rng.permutation(n)[:k])"),
   ("    codes = None\n    if codes is None or len(codes) != n:\n"
   "        return np.sort(rng.permutation(n)[:k])"),
   ["tests/test_debug_runs.py::test_a_fraction_keeps_a_seeded_share_of_every_split_with_every_class"]),
 "fraction-seed-ignored": ("cbrun/data/splits.py",
   "rng = np.random.default_rng([seed, _SHARE_STREAM, split])",
   "rng = np.random.default_rng([0, _SHARE_STREAM, split])",
   ["tests/test_debug_runs.py::test_a_fraction_keeps_a_seeded_share_of_every_split_with_every_class"]),
 "optimizer-ema-options-alone-pass": ("cbrun/config/optimizer_options.py",
   'if options.get("use_ema", False) is False:', "if False:",
   ["tests/test_optimizer_options.py::test_each_option_given_wrong_is_named_at_its_line"]),
 "optimizer-accumulation-of-one": ("cbrun/config/optimizer_options.py",
   "    if value is None or (_whole(value) and value >= 2):",
   "    if value is None or (_whole(value) and value >= 1):",
   ["tests/test_optimizer_options.py::test_each_option_given_wrong_is_named_at_its_line"]),
 "optimizer-checks-stop-at-first": ("cbrun/config/compile.py",
   "        found += [((key,), problem) for key, problem in option_problems(",
   "        found = found or [((key,), problem) for key, problem in option_problems(",
   ["tests/test_optimizer_options.py::test_independent_optimizer_mistakes_are_reported_together"]),
 "config-data-files-unread-when-wrong": ("cbrun/config/load.py",
   ("        if data_dir is not None:\n            problems += [pos.problem(loc, message)\n"
   "                         for loc, message in _data_alone(data, data_dir)]"),
   ("        if False:\n            problems += [pos.problem(loc, message)\n"
   "                         for loc, message in _data_alone(data, data_dir)]"),
   ["tests/test_config_errors.py::test_independent_mistakes_are_reported_in_one_run"]),
 "compose-mapping-line-of-earlier-file": ("cbrun/config/compose.py",
   ("    tables = ((own.values, positions.values), (own.keys, positions.keys),\n"
   "              (own.ends, positions.ends))"),
   ("    tables = ((own.keys, positions.keys),) if keys_only else (\n"
   "        (own.values, positions.values), (own.keys, positions.keys), (own.ends, positions.ends))"),
   ["tests/test_compose.py::test_a_mapping_two_files_set_is_blamed_at_a_line_of_the_later_one"]),
 "binary-labels-unchecked": ("cbrun/engine/datacheck.py",
   "    elif loss in BINARY_LOSSES and len(y) and (y.min() < 0 or y.max() > 1):",
   "    elif False:",
   ["tests/test_validate_build.py::test_build_names_each_mistake_at_the_line_that_set_it"]),
 "build-data-unchecked": ("cbrun/engine/buildcheck.py",
   "        check_data_fits(config, splits, model)", "        pass",
   ["tests/test_validate_build.py"]),
})

M.update({  # issue 25: streamed tables
 "stream-resume-restarts-window": ("cbrun/data/order.py",
   "        drop = start_row - index * window if index == first else 0",
   "        drop = 0",
   ["tests/test_stream.py::test_a_sigkilled_streamed_run_resumes_to_the_same_log_byte_for_byte"]),
 "learn-vocab-not-by-frequency": ("cbrun/data/learn.py",
   "        ranked = ranked[:most]", "        ranked = sorted(counts.items())[:most]",
   ["tests/test_stream.py::test_streamed_and_in_memory_paths_learn_and_hold_the_same"]),
 "shards-kind-unchecked": ("cbrun/data/shards.py",
   "            if kind_of(mine) != kind_of(theirs) and", "            if False and",
   ["tests/test_stream.py::test_a_broken_shard_is_named_by_validate_before_tensorflow"]),
 "init-classes-from-sample": ("cbrun/commands/init/tables.py",
   "    head, compile_, kind, split = _target(data, label, distinct.get(label))",
   "    head, compile_, kind, split = _target(data, label, None)",
   ["tests/test_stream.py::test_init_on_a_shard_folder_reads_a_sample_and_the_label_and_says_so"]),
 "init-counts-from-sample": ("cbrun/commands/init/tables.py",
   "len(distinct[c]) if distinct.get(c) is not None else", "len(distinct[c]) if False else",
   ["tests/test_stream.py::test_init_on_a_shard_folder_reads_a_sample_and_the_label_and_says_so"]),
 "stream-nulls-unchecked": ("cbrun/data/stream.py",
   "                _nulls(batch, used, rows, piece, at)", "                pass",
   ["tests/test_stream.py::test_a_streamed_csv_missing_value_is_named_by_file_and_line_before_training"]),
 "stream-fraction-ignored": ("cbrun/data/stream.py",
   "            mask &= self.keep.mask(piece.start, piece.rows)", "            pass",
   ["tests/test_stream_bounded.py::test_a_streamed_split_keeps_each_class_share_within_binomial_noise"]),
})

M.update({  # issue 26: backend jax, several processes
 "jax-backend-not-chosen": ("cbrun/engine/tfimport.py",
   '    os.environ["KERAS_BACKEND"] = backend', '    pass',
   ["tests/test_backend.py::test_a_jax_run_trains_on_jax"]),
 "processes-same-half": ("cbrun/engine/distribute.py",
   ".shard(peers.count, peers.index)", ".shard(peers.count, 0)",
   ["tests/test_processes.py::test_one_process_and_two_train_the_same_run"]),
 "processes-keep-partial-batch": ("cbrun/engine/distribute.py",
   "    return min(steps, whole)", "    return steps",
   ["tests/test_processes.py::test_one_process_and_two_train_the_same_run"]),
 "processes-watcher-blind": ("cbrun/engine/peers.py",
   "            if others and not self._stop.is_set():", "            if False:",
   ["tests/test_processes.py::test_a_process_that_fails_ends_the_job_with_one_message"]),
 "processes-silence-unnoticed": ("cbrun/engine/peers.py",
   "                silent = self._silent(heard, started) if self.writer else None",
   "                silent = None",
   ["tests/test_processes.py::test_a_process_killed_without_a_word_ends_the_job_naming_it"]),
 "processes-stop-not-agreed": ("cbrun/engine/session.py",
   "(own.AgreedStop(peers.agree_to_stop, rounds) if several_processes",
   "(own.SafeStop() if several_processes",
   ["tests/test_processes.py::test_a_signal_to_one_process_stops_every_process_at_the_same_batch"]),
})

M.update({  # issue 26: several processes stop and resume at a batch
 "processes-round-own-plan": ("cbrun/engine/peers.py",
   "        self.interval = int(said[0][2])",
   "        self.interval = int(said[self.peers.index][2])",
   ["tests/test_rounds.py::test_every_process_stops_and_saves_at_the_same_batch_whoever_was_asked"]),
 "processes-round-never-stops": ("cbrun/engine/peers.py",
   "        if asked:\n            self.reason = asked[0]",
   "        if False:\n            self.reason = asked[0]",
   ["tests/test_rounds.py::test_every_process_stops_and_saves_at_the_same_batch_whoever_was_asked"]),
 "processes-round-wait-unnamed": ("cbrun/engine/peers.py",
   "                raise RunError(f\"process {index} of {self.count} did not come to {key} within \"",
   "                raise RunError(f\"process {self.index} of {self.count} did not come to {key} within \"",
   ["tests/test_rounds.py::test_a_process_that_never_comes_to_a_round_ends_the_wait_naming_it"]),
})

M.update({  # issue 26: the commands that build a config's model run on its backend
 "lrfind-on-tensorflow": ("cbrun/commands/lrfind.py",
   "    import_tensorflow(debug, backend=config.backend)",
   "    import_tensorflow(debug, backend=\"tensorflow\")",
   ["tests/test_backend.py::test_lr_find_and_validate_build_run_a_jax_config_on_jax"]),
 "validate-build-on-tensorflow": ("cbrun/commands/validate.py",
   "    import_tensorflow(debug, backend=loaded.config.backend)",
   "    import_tensorflow(debug, backend=\"tensorflow\")",
   ["tests/test_backend.py::test_lr_find_and_validate_build_run_a_jax_config_on_jax"]),
 "lrfind-tf-batches-on-jax": ("cbrun/engine/lrfind.py",
   "            batches = dataset if keras.backend.backend() == \"tensorflow\" \\\n",
   "            batches = dataset if True \\\n",
   ["tests/test_backend.py::test_lr_find_and_validate_build_run_a_jax_config_on_jax"]),
 "follower-config-unplaced": ("cbrun/commands/job.py",
   "            why, code = str(fill_positions(exc, Positions.from_json(job[\"positions\"]))), \\\n",
   "            why, code = str(exc), \\\n",
   ["tests/test_processes.py::test_a_process_that_fails_ends_the_job_with_one_message"]),
 "launch-command-lost": ("cbrun/run/processes.py",
   "           ENV_PROCESSES: str(count), ENV_COMMAND: json.dumps(command or [\"cbrun\", *args])}",
   "           ENV_PROCESSES: str(count)}",
   ["tests/test_processes.py::test_only_process_0_writes_the_run"]),
})

M.update({  # the modules of this stop that had no mutation of their own
 "native-log-nothing-held": ("cbrun/engine/native_log.py",
   "        os.dup2(sink.fileno(), 2)", "        pass",
   ["tests/test_export_quantize.py::test_an_export_prints_no_tensorflow_log_lines"]),
 "quality-scored-on-training": ("cbrun/engine/quality.py",
   "    return next((name, split) for name, split in ((\"validation\", splits.validation),",
   "    return next((name, split) for name, split in ((\"train\", splits.train),",
   ["tests/test_benchmark.py::test_every_format_is_a_row_of_the_table",
    "tests/test_export_quantize.py::test_two_inputs_and_a_classifier_and_a_regression_output_are_scored_each"]),
 "relay-batch-from-zero": ("cbrun/engine/callbacks/relay.py",
   "        self.inner.on_train_batch_end(batch + self.offset, logs)",
   "        self.inner.on_train_batch_end(batch, logs)",
   ["tests/test_long_runs.py::test_a_run_killed_at_any_batch_resumes_to_the_uninterrupted_run"]),
 "streamcheck-first-row-only": ("cbrun/data/streamcheck.py",
   "            start += group.num_rows", "            pass",
   ["tests/test_stream.py::test_a_parquet_shards_missing_value_is_named_by_file_and_row_at_validate"]),
 "requeue-trains-again": ("cbrun/commands/requeue.py",
   "        if status in ENDED:", "        if False:",
   ["tests/test_long_runs.py::test_one_command_line_trains_resumes_and_then_does_nothing"]),
})


M.update({  # issue 25: a streamed table keeps nothing per row
 "rowsplit-position-ignored": ("cbrun/data/rowsplit.py",
   "        u = unit(_key(self.seed, _SPLIT_STREAM), start, count)",
   "        u = unit(_key(self.seed, _SPLIT_STREAM), 0, count)",
   ["tests/test_stream_bounded.py::test_a_rows_split_is_a_pure_function_of_seed_and_position",
    "tests/test_stream_bounded.py::test_a_streamed_table_keeps_no_array_of_its_rows"]),
 "rowsplit-validation-of-all": ("cbrun/data/rowsplit.py",
   "u < self.test + (1.0 - self.test) * self.validation]",
   "u < self.test + self.validation]",
   ["tests/test_stream_bounded.py::test_a_rows_split_is_a_pure_function_of_seed_and_position"]),
 "tally-sorted-blind": ("cbrun/data/tally.py",
   "        return classes >= 2 and self.runs + 1 == classes", "        return False",
   ["tests/test_stream_bounded.py::test_a_sorted_streamed_table_with_tail_warns_at_validate"]),
 "streamcheck-unseen-class-unchecked": ("cbrun/data/streamcheck.py",
   "        unseen_classes(counted.tally,", "        (lambda *a: None)(counted.tally,",
   ["tests/test_stream_bounded.py::test_a_held_out_class_that_training_lacks_is_named_at_validate"]),
 "datacheck-shards-read-whole": ("cbrun/data/table_check.py",
   "    if sampled is not None:", "    if False:",
   ["tests/test_stream_bounded.py::test_data_check_on_shards_reads_footers_the_label_and_a_sample_and_says_so"]),
 "datacheck-shards-footers-ignored": ("cbrun/data/sampled.py",
   "        findings, profiles = _footers(shards, features + labels, findings, profiles)",
   "        pass",
   ["tests/test_stream_bounded.py::test_data_check_on_shards_reads_footers_the_label_and_a_sample_and_says_so"]),
 "words-punctuation-kept": ("cbrun/data/learn.py",
   '        pc.replace_substring_regex(lowered, pattern=STRIP, replacement="")))',
   "        lowered))",
   ["tests/test_stream_bounded.py::test_text_vectorization_is_set_from_the_one_pass_as_adapt_would_learn_it"]),
 "words-case-kept": ("cbrun/data/learn.py",
   "    lowered = pc.ascii_lower(column)", "    lowered = column",
   ["tests/test_stream_bounded.py::test_text_vectorization_is_set_from_the_one_pass_as_adapt_would_learn_it"]),
 "predict-shards-batches-misaligned": ("cbrun/engine/predict_stream.py",
   "        chunk = max(size, CHUNK_ROWS - CHUNK_ROWS % size)", "        chunk = CHUNK_ROWS + 1",
   ["tests/test_stream_bounded.py::test_predict_on_a_shard_folder_writes_what_predict_on_one_file_writes"]),
 "predict-shards-npz-first-width": ("cbrun/engine/predict_stream.py",
   'final = max(kinds, key=lambda d: d.itemsize) if kinds[0].kind == "U" else kinds[0]',
   "final = kinds[0]",
   ["tests/test_stream_bounded.py::test_predict_on_a_shard_folder_writes_what_predict_on_one_file_writes"]),
 "datacheck-whole-run-sampled": ("cbrun/data/sampled.py",
   "        if not decide(data, shards).stream:", "        if False:",
   ["tests/test_stream_bounded.py::test_data_check_of_a_config_samples_only_the_tables_its_run_streams"]),
 "init-parquet-heads": ("cbrun/commands/init/tables.py",
   "            return _parquet_sample(path, shards)", "            pass",
   ["tests/test_stream.py::test_init_on_a_shard_folder_reads_a_sample_and_the_label_and_says_so"]),
 "baseline-counts-unweighted": ("cbrun/engine/baseline.py",
   "        return found if found is not None else", "        return (found[0], None) if found is not None else",
   ["tests/test_stream_bounded.py::test_a_streamed_runs_baseline_comes_from_its_counted_labels"]),
})

M.update({  # leftover of issue 27: debug runs in listings
    "runs-overfit-unmarked": ("cbrun/commands/runs.py", 'info.shown_status + (f" (overfit {info.overfit_batches})"', 'info.shown_status + (""', ["tests/test_debug_runs.py::test_two_overfit_batches_are_learned_to_a_training_accuracy_of_one"]),
    "record-overfit-dropped": ("cbrun/run/record.py", "            overfit_batches=overfit_batches)", "            )", ["tests/test_debug_runs.py::test_two_overfit_batches_are_learned_to_a_training_accuracy_of_one"]),
})
M.update({  # issue 28: tracking
 "tracking-epoch-waits": ("cbrun/tracking/view.py",
   ('        self._held.append((epoch, metrics))\n        self._send_held()\n'),
   ('        self._held.append((epoch, metrics))\n        self._send_held()\n'
    '        if not self.sender.wait(self.stall):\n'
    '            self._give_up("no answer")\n'),
   ["tests/test_tracking.py::test_training_goes_on_while_the_tracker_is_held_and_every_epoch_arrives"]),
 "tracking-end-no-wait": ("cbrun/tracking/view.py",
   "        finished = self.sender.wait(self.stall)", "        finished = self.sender.wait(0)",
   ["tests/test_tracking.py::test_training_goes_on_while_the_tracker_is_held_and_every_epoch_arrives"]),
 "tracking-queue-unbounded": ("cbrun/tracking/sender.py",
   "queue.Queue(maxsize=self.queue_items)", "queue.Queue()",
   ["tests/test_tracking.py::test_a_tracker_that_answers_nothing_costs_the_end_a_bounded_wait_and_lists_the_rest"]),
 "tracking-in-flight-unlisted": ("cbrun/tracking/view.py",
   "                if label is not None and t.name not in answered:\n                    t.lost(label)",
   "                pass",
   ["tests/test_tracking.py::test_a_tracker_that_answers_nothing_costs_the_end_a_bounded_wait_and_lists_the_rest"]),
})
M.update({  # issue 28: speed
 "baseline-last-batch-only": ("cbrun/engine/baseline.py",
   "        logs = trivial.test_function(iter([(inputs, targets, None)]))",
   "        trivial.reset_metrics()\n        logs = trivial.test_function(iter([(inputs, targets, None)]))",
   ["tests/test_first_model.py::test_the_baseline_is_scored_over_every_row_of_a_split_of_several_batches"]),
 "pacing-wall-clock-only": ("cbrun/engine/pacing.py",
   "best = min(best, time.perf_counter() - wall, time.process_time() - cpu)",
   "best = min(best, time.perf_counter() - wall)",
   ["tests/test_train.py::test_auto_steps_per_execution_does_not_count_the_waits_of_a_busy_machine"]),
})
M.update({  # issue 28: sweeps
 "sweep-warm-never": ("cbrun/sweep/driver.py",
   "        if self.pool is not None and self._shares_a_worker(params, first):",
   "        if False:",
   ["tests/test_sweep_warm.py::test_one_worker_process_trains_trial_after_trial"]),
 "sweep-idle-worker-dropped": ("cbrun/sweep/pool.py",
   "            if self.closed or not worker.alive:", "            if True:",
   ["tests/test_sweep_warm.py::test_one_worker_process_trains_trial_after_trial"]),
 "sweep-worker-kept-after-failure": ("cbrun/sweep/pool.py",
   "            if code == 0 and self._give_back(worker):",
   "            if self._give_back(worker):",
   ["tests/test_sweep_warm.py::test_one_worker_process_trains_trial_after_trial"]),
 "sweep-worker-stderr-lost": ("cbrun/sweep/worker.py",
   "    os.dup2(fd, 2)\n", "    pass\n",
   ["tests/test_sweep_warm.py::test_one_worker_process_trains_trial_after_trial"]),
 "worker-keras-settings-kept": ("cbrun/engine/worker_state.py",
   "        if name in settings and read() != settings[name]:", "        if False:",
   ["tests/test_sweep_warm.py::test_between_trials_every_keras_setting_is_put_back"]),
})

M.update({  # issue 28: tracking's cost
 "track-child-stderr-dropped": ("cbrun/tracking/sender.py",
   "stderr=log or subprocess.DEVNULL,", "stderr=subprocess.DEVNULL,",
   ["tests/test_tracking.py::test_a_tracking_process_that_crashes_leaves_its_last_words_in_the_run"]),
 "track-empty-log-kept": ("cbrun/tracking/sender.py",
   "            if self.log_path.stat().st_size == 0:", "            if False:",
   ["tests/test_tracking.py::test_a_tracking_process_with_nothing_to_say_leaves_no_log"]),
 "track-new-store-left-behind": ("cbrun/tracking/mlflow_sink.py",
   "        made.unlink(missing_ok=True)", "        pass",
   ["tests/test_tracking.py::test_a_new_sqlite_store_is_the_one_mlflow_makes_and_nothing_else"]),
 "track-new-store-private": ("cbrun/tracking/mlflow_sink.py",
   "os.O_WRONLY, 0o666)", "os.O_WRONLY, 0o600)",
   ["tests/test_tracking.py::test_a_new_sqlite_store_is_the_one_mlflow_makes_and_nothing_else"]),
 "track-new-store-wal": ("cbrun/tracking/mlflow_sink.py",
   "PRAGMA journal_mode=MEMORY", "PRAGMA journal_mode=WAL",
   ["tests/test_tracking.py::test_a_new_sqlite_store_is_the_one_mlflow_makes_and_nothing_else"]),
})
M.update({  # issue 28: sweeps, time per trial
 "sweep-refused-worker-left": ("cbrun/commands/sweep.py",
   "    finally:\n        if pool is not None:\n            pool.close()\n\n\ndef _study",
   "    finally:\n        pass\n\n\ndef _study",
   ["tests/test_sweep_warm.py::test_a_refused_sweep_leaves_no_worker_behind"]),
 "sweep-report-prepared-changes-plots": ("cbrun/sweep/results.py",
   "    plt.close(figure)\n\n\ndef write_plots",
   "    plt.close(figure)\n    matplotlib.rcParams[\"font.family\"] = \"monospace\"\n\n\ndef write_plots",
   ["tests/test_sweep_warm.py::test_the_plots_are_those_sweep_show_draws_afresh"]),
 "sweep-tracked-trial-fresh": ("cbrun/sweep/pool.py",
   '    if config.distribute.type != "none":',
   ('    if config.tracking is not None:\n        return "tracking:"\n'
   '    if config.distribute.type != "none":'),
   ["tests/test_sweep_warm.py::test_tracked_trials_share_a_warm_worker_each_with_its_own_mlflow_run"]),
})

M.update({  # issue 28: the compute-bound run (import, build, epochs)
 "tfimport-jax-imported": ("cbrun/engine/tfimport.py",
   'LATER = ("matplotlib", "jax", "jaxlib")', 'LATER = ("matplotlib",)',
   ["tests/test_process.py::test_the_cbrun_process_holds_the_collector_off_through_the_first_epoch"]),
 "keeper-waits-at-train-end": ("cbrun/engine/callbacks/keeper.py",
   "        # then waits (`writer.close()`), before the run's end is recorded.\n        pass",
   ("        # then waits (`writer.close()`), before the run's end is recorded.\n"
    "        self.writer.close()"),
   ["tests/test_state_write.py::test_the_end_of_training_leaves_the_last_write_to_the_session"]),
 "tfimport-tflite-jax-lost": ("cbrun/engine/tfimport.py",
   "                module._jit = _jax_jit_when_used", "                pass",
   ["tests/test_process.py::test_the_cbrun_process_holds_the_collector_off_through_the_first_epoch"]),
})


M.update({  # issue 28: tracking's cost per epoch
 "track-epoch-always-saved": ("cbrun/tracking/view.py",
   "        if self._every_epoch or self._changed():", "        if True:",
   ["tests/test_tracking.py::test_an_mlflow_only_run_rewrites_run_json_for_an_epoch_only_when_its_entry_changed"]),
 "track-run-id-unsaved": ("cbrun/tracking/view.py",
   "        return any(self._entry(t) != self._written.get(t.name) for t in self.tracked.values())",
   "        return False",
   ["tests/test_tracking.py::test_an_mlflow_only_run_rewrites_run_json_for_an_epoch_only_when_its_entry_changed"]),
 "track-epoch-before-state": ("cbrun/tracking/view.py",
   "            on_disk = self._writer.written or 0",
   "            on_disk = self._held[-1][0] if self._held else 0",
   ["tests/test_tracking.py::test_an_epoch_reaches_mlflow_only_once_its_state_is_on_disk"]),
 "track-epochs-one-by-one": ("cbrun/tracking/child.py",
   "            out.append(message)\n", "            ahead.append(message)\n            break\n",
   ["tests/test_tracking.py::test_training_goes_on_while_the_tracker_is_held_and_every_epoch_arrives"]),
})


M.update({  # issue 28: tracking's per-epoch cost to a store
 "track-send-unpaced": ("cbrun/tracking/child.py",
   "_gather(commands, ahead, pace.send_at(time.monotonic()))",
   "_gather(commands, ahead, time.monotonic() + LINGER_SECONDS)",
   ["tests/test_tracking.py::test_a_dear_send_holds_the_epochs_after_it_for_one_send"]),
 "track-pace-uncapped": ("cbrun/tracking/child.py",
   "min(self.next_at, arrival + MAX_LINGER_SECONDS)", "self.next_at",
   ["tests/test_tracking.py::test_the_pace_of_sends_follows_what_the_last_one_cost"]),
})
M.update({  # stop 33: the suite's time (checks kept when their runs were cut)
 "models-resume-stays-frozen": ("cbrun/engine/model/phases.py",
   "        if stage.at_epoch < epoch:", "        if stage.at_epoch < 0:",
   ["tests/test_models.py::test_killed_and_resumed_runs_end_exactly_like_uninterrupted_ones"]),
 "signals-act-at-once": ("cbrun/run/segment.py",
   "        _requested.append(signum)", "        raise KeyboardInterrupt",
   ["tests/test_signals.py::test_every_signal_ends_the_run_interrupted_with_its_exit_code"]),
})
M.update({  # issue 28: the wide workload's epoch at the floor
 "array-batches-per-sample": ("cbrun/engine/data.py",
   "        batches = tf.data.Dataset.from_tensor_slices((_map(xs, batched), _map(ys, batched)))",
   "        batches = tf.data.Dataset.from_tensor_slices((xs, ys)).batch(batch_size)",
   ["tests/test_data_order.py::test_array_batches_are_the_orders_rows_never_batched_a_sample_at_a_time"]),
 "array-batches-shifted": ("cbrun/engine/data.py",
   "                rows = now[i * batch_size:(i + 1) * batch_size]",
   "                rows = now[i * batch_size + 1:(i + 1) * batch_size + 1]",
   ["tests/test_data_order.py::test_array_batches_are_the_orders_rows_never_batched_a_sample_at_a_time"]),
})

M.update({  # issue 28: auto on an epoch of a prime count of batches
 "auto-prime-epoch-one-a-call": ("cbrun/engine/pacing.py",
   "    return above if above * seconds <= MOST_SECONDS_PER_CALL else below",
   "    return below",
   ["tests/test_train.py::test_auto_steps_per_execution_divides_the_epoch_and_respects_batch_callbacks"]),
 "auto-call-unbounded": ("cbrun/engine/pacing.py",
   "above * seconds <= MOST_SECONDS_PER_CALL", "True",
   ["tests/test_train.py::test_auto_steps_per_execution_divides_the_epoch_and_respects_batch_callbacks"]),
})

M.update({  # reliability: data.fraction on a streamed table
 "fraction-streamed-none-drawn": ("cbrun/engine/sources/__init__.py",
   "            if len(split.table) and not len(kept):", "            if False:",
   ["tests/test_debug_runs.py::test_a_fraction_that_draws_no_row_of_a_streamed_table_is_refused_before_training"]),
})
M.update({  # issue 28: the wide epoch against the floor, paired (stop 34)
 "pipeline-length-not-given": ("cbrun/engine/session.py",
   "steps_per_epoch=None if order is None else steps - start,", "steps_per_epoch=None,",
   ["tests/test_pipeline_cost.py::test_cbruns_own_pipelines_make_one_iterator_an_epoch_and_need_no_autograph"]),
 "array-pipeline-autograph": ("cbrun/engine/data.py",
   "    @as_written\n    def epoch(_):", "    def epoch(_):",
   ["tests/test_pipeline_cost.py::test_cbruns_own_pipelines_make_one_iterator_an_epoch_and_need_no_autograph"]),
 "table-pipeline-autograph": ("cbrun/engine/data.py",
   "    @as_written\n    def one_epoch(_):", "    def one_epoch(_):",
   ["tests/test_pipeline_cost.py::test_cbruns_own_pipelines_make_one_iterator_an_epoch_and_need_no_autograph"]),
})


if __name__ == "__main__":
    main()
