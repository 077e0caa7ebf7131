#!/bin/sh
# The image's entry point. Before the daemon starts: bring the store up to date and load the
# seed studies (watching their registrations), so that a new container watches something.
# Both steps are idempotent; a failure (the database not reachable yet) stops the container,
# and its restart policy tries again. Other commands (`docker run IMAGE trialwatch changes`)
# run as they are. TRIALWATCH_SEEDS_DIR="" skips the seeds.
set -eu
if [ "${1:-}" = "trialwatch" ] && [ "${2:-}" = "run" ]; then
    trialwatch init
    seeds=${TRIALWATCH_SEEDS_DIR-/app/seeds}
    if [ -n "$seeds" ]; then
        trialwatch seeds load "$seeds"
    fi
fi
exec "$@"
