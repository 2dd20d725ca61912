# bash completion for hybridtrace (written by tools/gen_completion.py; do not edit)
_hybridtrace() {
    local cur prev cmd i
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    cmd=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            execsnoop|opensnoop|doctor|cleanup) cmd="${COMP_WORDS[i]}"; break ;;
        esac
    done
    case "$cmd" in
        "")
            COMPREPLY=($(compgen -W "execsnoop opensnoop doctor cleanup -h --help --version" -- "$cur"))
            return ;;
        execsnoop)
            case "$prev" in
                --backend) COMPREPLY=($(compgen -W "auto ebpf ebpf-core ebpf-bcc ftrace" -- "$cur")); return ;;
                --tier) COMPREPLY=($(compgen -W "kprobe eprobe uprobe tracepoint" -- "$cur")); return ;;
                --ebpf-attach) COMPREPLY=($(compgen -W "tracepoint tp_btf raw_tp" -- "$cur")); return ;;
                --ftrace-reader) COMPREPLY=($(compgen -W "raw text" -- "$cur")); return ;;
                -d|--duration) COMPREPLY=(); return ;;
                -u|--uid) COMPREPLY=(); return ;;
                -b|--buffer-pages) COMPREPLY=(); return ;;
                -c|--cgroup) COMPREPLY=(); return ;;
                --container) COMPREPLY=(); return ;;
                --mntns) COMPREPLY=(); return ;;
                --descendants-of) COMPREPLY=(); return ;;
                --cgroupmap) COMPREPLY=(); return ;;
                --mntnsmap) COMPREPLY=(); return ;;
                -n|--name) COMPREPLY=(); return ;;
                -l|--line) COMPREPLY=(); return ;;
                -P|--ppid) COMPREPLY=(); return ;;
                --max-args) COMPREPLY=(); return ;;
            esac
            COMPREPLY=($(compgen -W "-h --help --backend --tier --ebpf-attach --ftrace-reader --json -Q --quiet -d --duration -U --print-uid -u --uid -b --buffer-pages -c --cgroup --container --mntns --descendants-of --print-container --cgroupmap --mntnsmap -T --time -t --timestamp --relative-time -x --fails -q --quote -n --name -l --line -P --ppid --max-args" -- "$cur"))
            return ;;
        opensnoop)
            case "$prev" in
                --backend) COMPREPLY=($(compgen -W "auto ebpf ebpf-core ebpf-bcc ftrace" -- "$cur")); return ;;
                --tier) COMPREPLY=($(compgen -W "kprobe eprobe uprobe tracepoint" -- "$cur")); return ;;
                --ebpf-attach) COMPREPLY=($(compgen -W "tracepoint tp_btf raw_tp" -- "$cur")); return ;;
                --ftrace-reader) COMPREPLY=($(compgen -W "raw text" -- "$cur")); return ;;
                -d|--duration) COMPREPLY=(); return ;;
                -u|--uid) COMPREPLY=(); return ;;
                -b|--buffer-pages) COMPREPLY=(); return ;;
                --cgroup) COMPREPLY=(); return ;;
                --container) COMPREPLY=(); return ;;
                --mntns) COMPREPLY=(); return ;;
                --descendants-of) COMPREPLY=(); return ;;
                --cgroupmap) COMPREPLY=(); return ;;
                --mntnsmap) COMPREPLY=(); return ;;
                -p|--pid) COMPREPLY=(); return ;;
                -t|--tid) COMPREPLY=(); return ;;
                -n|--name) COMPREPLY=(); return ;;
                -f|--flag_filter|--flag-filter) COMPREPLY=(); return ;;
            esac
            COMPREPLY=($(compgen -W "-h --help --backend --tier --ebpf-attach --ftrace-reader --json -Q --quiet -d --duration -U --print-uid -u --uid -b --buffer-pages --cgroup --container --mntns --descendants-of --print-container --cgroupmap --mntnsmap -T --timestamp -x --failed -p --pid -t --tid -n --name -e --extended_fields --extended-fields -f --flag_filter --flag-filter -F --full-path --via" -- "$cur"))
            return ;;
        doctor)
            case "$prev" in
                --root) COMPREPLY=($(compgen -f -- "$cur")); return ;;
                --backend) COMPREPLY=($(compgen -W "auto ebpf ebpf-core ebpf-bcc ftrace" -- "$cur")); return ;;
            esac
            COMPREPLY=($(compgen -W "-h --help --json --root --backend" -- "$cur"))
            return ;;
        cleanup)
            case "$prev" in
            esac
            COMPREPLY=($(compgen -W "-h --help" -- "$cur"))
            return ;;
    esac
}
complete -F _hybridtrace hybridtrace
