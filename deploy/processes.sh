# shellcheck shell=bash disable=SC2034  # PROCESSES is read by the scripts that source this
# Shared by deploy/start_all_production.sh and deploy/stop_all.sh (sourced, not run).

# Each pid file's name and the script its process runs, in starting order (stop_all.sh
# stops them in the reverse order: the dashboard and the sources first, the daemon last).
PROCESSES=(
    daemon:tft_inference_daemon.py
    generator:metrics_generator_daemon.py
    mongodb:adapters/mongodb_adapter.py
    elasticsearch:adapters/elasticsearch_adapter.py
    dashboard:dash_app.py
)

# runs PID SCRIPT: true while process PID runs SCRIPT (an argument of its command line).
# A zombie has an empty command line: it counts as gone.
runs() {
    local arg
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    while IFS= read -r -d '' arg; do
        if [[ $arg == "$2" || $arg == */"$2" ]]; then return 0; fi
    done 2>/dev/null <"/proc/$1/cmdline" || return 1
    return 1
}
