"""The BCC engine: the eBPF programs in BCC's C dialect, compiled at run time.

Modules, in the order a session uses them:

- ``headers``: which kernel headers BCC compiles against (the running
  release's, or a borrowed tree the user names in $HYBRIDTRACE_BCC_HEADERS,
  as tools/fetch_bcc_headers.sh in the source repository makes one). Light:
  requirements.py imports it.
- ``hybridtrace.btf_offsets`` (shared): task_struct/mm_struct offsets from the
  running kernel's BTF, for borrowed headers whose struct layouts are another kernel's.
- ``bcc_program``: the C text (common.c + exec.c or open.c) and its -D flags
  (filters, buffer kind, offsets, optional tracepoints).
- ``bcc_import``: python3-bpfcc from the system location, even inside a venv.
- ``bcc_compile``: BCC's compiler output captured, failures as one line.
- ``bcc_records``: records -> ExecEvent/OpenEvent, same meaning as ebpf-core's.
- ``bcc_stream``: the EventStream (ring buffer with an in-kernel loss counter,
  or perf buffer with its lost callback).

Only tracepoints are used (never kprobes). Without exact headers or BTF,
task_struct is never read: ppid comes from /proc and argv only from the
caller's memory, and the assessment and description say so.
"""
