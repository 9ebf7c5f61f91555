"""C++ that turns a cpp_standalone binary into a loop of jobs: set up once, run many.

Brian2's generated ``main`` sets the network up (allocates every array, creates the
synapses), applies the run arguments, runs once and writes every array. For a rerun with
new weights most of a short sleep's call went to that set-up: process start, creating
2.9-7.7 M synapses, and Brian2 sorting them into its spike queues
(``benchmarks/engine_speed.md``, "fixed cost"). The code generated here, inserted with
Brian2's own ``insert_code`` slots, wraps the part of ``main`` from the run arguments to
the end of the run in a loop:

- **One job per line.** Started with :data:`SERVE_FLAG`, the binary reads jobs from its
  standard input, one per line: the results directory, then ``name=file`` run arguments,
  tab-separated. It prints :data:`JOB_DONE` after each and exits at the end of its input.
  Started with arguments as before, it runs that one job.
- **Every job starts from the state a fresh process has.** Before the first job every
  state array of the network (membrane potentials, last spike times, spike monitors,
  spike spaces, ...) is copied; before every later job it is copied back. Only what a job
  sets itself (its run arguments) and what no run writes (the synapses' connection
  indices, their counts and delays) are left out, so a variable a user adds to a model
  file is restored too. The network's own clock is set back to 0. Brian2's spike queues
  are set up once (their synapse lists depend only on the connection indices) and
  emptied before every job (a run ends with its last step's spikes still queued: Brian2
  advances a queue at the start of a step), their position set back to 0.
- **Each job writes only what is read back**: the weights, the spike monitors, the
  connection indices when the run argument :data:`~.network.WRITE_ORDER_VARIABLE` asks,
  and ``last_run_info.txt``, into its own results directory. Any failure to write prints
  an ``Error ...`` line, which fails the call (:class:`.standalone.CompiledRunError`).

Exactness: a job in a long-running binary gives bit-identical spikes and weights to the
same job in a fresh process (``tests/test_job_loop.py``). Only Brian2's variables are
restored, which covers everything a model file can hold: equations and numbers (a
model's ``CONSTANTS`` are numbers, so no user-provided C++ function with state of its own
can carry anything from one job to the next); the random number generator is seeded by
every job.
"""

from __future__ import annotations

#: Command-line flag: read jobs from standard input.
SERVE_FLAG = "--brainsleep-serve"
#: The line the binary prints when a job has finished and its results are written.
JOB_DONE = "brainsleep-job-done"
#: Synapse variables no run writes: the connection itself (restoring them would copy
#: 12-24 bytes per synapse per job for nothing).
STRUCTURAL = frozenset({"_synaptic_pre", "_synaptic_post", "N_incoming", "N_outgoing", "delay"})


def _c_type(var) -> str:
    from brian2.codegen.generators.cpp_generator import c_data_type

    return c_data_type(var.dtype)


def _is_dynamic(var) -> bool:
    from brian2.core.variables import DynamicArrayVariable

    return isinstance(var, DynamicArrayVariable)


def _array(var) -> str:
    """The C++ global holding ``var``: a std::vector for dynamic arrays, else a pointer."""
    from brian2 import device

    return f"brian::{device.get_array_name(var, access_data=not _is_dynamic(var))}"


def state_variables(bn, run_args: set[str]) -> list:
    """Every array of the network a run can change and no run argument sets, once each."""
    from brian2.core.clocks import Clock
    from brian2.core.variables import ArrayVariable

    # By array, not by name: Brian2 exposes one array under several names (i, j,
    # _presynaptic_idx, _postsynaptic_idx are _synaptic_pre and _synaptic_post).
    skip = {
        _array(syn.variables[name])
        for syn in bn.synapses
        for name in STRUCTURAL
        if isinstance(syn.variables.get(name), ArrayVariable)
    }
    seen: dict[str, object] = {}
    for obj in bn.net.objects:
        for name, var in getattr(obj, "variables", {}).items():
            if not isinstance(var, ArrayVariable) or isinstance(var.owner, Clock):
                continue
            if var.owner.name != obj.name:
                continue  # a reference to another object's variable: listed by its owner
            if f"{obj.name}.{name}" in run_args:
                skip.add(_array(var))  # set by every job
            seen.setdefault(_array(var), var)
    return [seen[k] for k in sorted(seen) if k not in skip]


def _snapshot_code(variables) -> str:
    lines = []
    for k, var in enumerate(variables):
        arr, snap, ctype = _array(var), f"_bs_state_{k}", _c_type(var)
        lines.append(f"static std::vector<{ctype}> {snap};")
        if _is_dynamic(var):
            lines.append(f"if (_bs_job == 0) {snap} = {arr}; else {arr} = {snap};")
        else:
            n = f"{int(var.size)}"
            lines.append(
                f"if (_bs_job == 0) {snap}.assign({arr}, {arr} + {n}); "
                f"else std::copy({snap}.begin(), {snap}.end(), {arr});"
            )
    return "\n".join(lines)


def _write_code(name: str, var, filename: str) -> str:
    """Write one array to the job's results directory; an ``Error`` line if it fails."""
    arr, ctype = _array(var), _c_type(var)
    if _is_dynamic(var):
        data, count = f"{arr}.data()", f"{arr}.size()"
    else:
        data, count = arr, f"{int(var.size)}"
    return (
        "{ const std::string _bs_path = brian::results_dir + "
        f'"{filename}"; FILE* _bs_f = fopen(_bs_path.c_str(), "wb"); '
        f"const size_t _bs_n = {count}; "
        f"const bool _bs_ok = _bs_f && (_bs_n == 0 || fwrite({data}, sizeof({ctype}), _bs_n, "
        "_bs_f) == _bs_n); "
        "if ((_bs_f && fclose(_bs_f) != 0) || !_bs_ok) "
        f'std::cout << "Error writing output file " << _bs_path << " ({name})" << std::endl; }}'
    )


def job_loop_code(bn, run_args: set[str], outputs: dict, order_flag: str) -> tuple[str, str]:
    """(opening, closing) C++ around one run in ``main``; see the module docstring.

    Parameters
    ----------
    bn : BrianNetwork
        The network being generated (cpp_standalone active).
    run_args : set of str
        ``"<object>.<variable>"`` names the build takes as run arguments.
    outputs : dict
        ``"<object>.<variable>" -> {"file": ...}``: what a job writes
        (:func:`~.standalone._interface`); ``._synaptic_pre`` / ``._synaptic_post`` only
        when the run argument ``order_flag`` is non-zero.
    order_flag : str
        ``"<object>.<variable>"`` of :data:`~.network.WRITE_ORDER_VARIABLE`.
    """
    objects = {o.name: o for o in bn.net.objects}

    def variable(full_name: str):
        owner, var = full_name.rsplit(".", 1)
        return objects[owner].variables[var]

    prepare = []
    pathways = []
    for syn in bn.synapses:
        for pathway in syn._pathways:
            fn = f"_before_run_{pathway.name}_push_spikes"
            # Set up once: the queue's synapse lists depend on the connection only.
            prepare.append(f"#define {fn}() do {{ if (_bs_job == 0) ({fn})(); }} while (0)")
            pathways.append(pathway.name)
    opening = "\n".join(
        [
            *prepare,
            f'const bool _bs_serve = args.size() == 1 && args[0] == "{SERVE_FLAG}";',
            "for (long _bs_job = 0; ; _bs_job++)",
            "{",
            "if (_bs_serve) {",
            "    std::string _bs_line;",
            "    if (!std::getline(std::cin, _bs_line)) return 0;",
            "    args.clear();",
            "    size_t _bs_from = 0, _bs_tab;",
            "    while ((_bs_tab = _bs_line.find('\\t', _bs_from)) != std::string::npos) {",
            "        args.push_back(_bs_line.substr(_bs_from, _bs_tab - _bs_from));",
            "        _bs_from = _bs_tab + 1;",
            "    }",
            "    args.push_back(_bs_line.substr(_bs_from));",
            "    brian::results_dir = args[0];",
            "    args.erase(args.begin());",
            "} else if (_bs_job > 0) return 0;",
            _snapshot_code(state_variables(bn, run_args)),
            f"brian::{bn.net.name}.t = 0.0;",
            *(
                f"for (auto* _bs_q : brian::{p}.queue) "
                "{ for (auto& _bs_slot : _bs_q->queue) _bs_slot.clear(); _bs_q->offset = 0; }"
                for p in pathways
            ),
        ]
    )
    flag = _array(variable(order_flag))
    writes = []
    for name, out in sorted(outputs.items()):
        code = _write_code(name, variable(name), out["file"])
        if name.endswith(("._synaptic_pre", "._synaptic_post")):
            code = f"if ({flag}[0] != 0) {code}"
        writes.append(code)
    info = (
        '{ std::ofstream _bs_info(brian::results_dir + "last_run_info.txt", std::ios::out); '
        '_bs_info << Network::_last_run_time << " " << Network::_last_run_completed_fraction '
        "<< std::endl; if (!_bs_info.good()) std::cout << "
        '"Error writing output file last_run_info.txt" << std::endl; }'
    )
    closing = "\n".join([*writes, info, f'std::cout << "{JOB_DONE}" << std::endl;', "}"])
    return opening, closing


def job_line(results_dir: str, args: list[str]) -> str:
    """One job for a binary started with :data:`SERVE_FLAG`.

    Raises
    ------
    ValueError
        A path or argument contains a tab or a line break (it would split the job).
    """
    fields = [results_dir, *args]
    bad = [f for f in fields if "\t" in f or "\n" in f or "\r" in f]
    if bad:
        raise ValueError(
            f"path {bad[0]!r} contains a tab or line break, which a compiled job cannot "
            "carry; use a build root without one"
        )
    return "\t".join(fields) + "\n"


__all__ = ["JOB_DONE", "SERVE_FLAG", "job_line", "job_loop_code", "state_variables"]
