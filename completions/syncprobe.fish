# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_syncprobe_global_optspecs
    string join \n json color= q/quiet v/verbose h/help V/version
end

function __fish_syncprobe_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_syncprobe_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_syncprobe_using_subcommand
    set -l cmd (__fish_syncprobe_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c syncprobe -n "__fish_syncprobe_needs_command" -l color -d 'When to use colour' -r -f -a "auto\t'Colour when the stream is a terminal, honouring NO_COLOR, CLICOLOR_FORCE and TERM=dumb'
always\t''
never\t''"
complete -c syncprobe -n "__fish_syncprobe_needs_command" -l json -d 'Write NDJSON records to stdout instead of text (see README, "--json")'
complete -c syncprobe -n "__fish_syncprobe_needs_command" -s q -l quiet -d 'Print only errors and the final result'
complete -c syncprobe -n "__fish_syncprobe_needs_command" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c syncprobe -n "__fish_syncprobe_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c syncprobe -n "__fish_syncprobe_needs_command" -s V -l version -d 'Print version'
complete -c syncprobe -n "__fish_syncprobe_needs_command" -f -a "connect" -d 'Open a sync socket, check CONNECTED, and close'
complete -c syncprobe -n "__fish_syncprobe_needs_command" -f -a "watch-sync" -d 'Stream an organization\'s sync events and check them against expectations'
complete -c syncprobe -n "__fish_syncprobe_needs_command" -f -a "enqueue" -d 'Queue writes through POST /api/pems/write-sync, optionally following them to the end'
complete -c syncprobe -n "__fish_syncprobe_needs_command" -f -a "smoke" -d 'Run the whole verification checklist against a backend (or the bundled server)'
complete -c syncprobe -n "__fish_syncprobe_needs_command" -f -a "conflicts" -d 'List an organization\'s sync conflicts, or resolve one (and follow its item again)'
complete -c syncprobe -n "__fish_syncprobe_needs_command" -f -a "doctor" -d 'Diagnose one organization\'s socket layer by layer, with a report to paste into a ticket'
complete -c syncprobe -n "__fish_syncprobe_needs_command" -f -a "status" -d 'Show an organization\'s queue health, backlog and sockets (--watch to refresh)'
complete -c syncprobe -n "__fish_syncprobe_needs_command" -f -a "load" -d 'Open many sync sockets and measure connect time, fan-out latency and completeness'
complete -c syncprobe -n "__fish_syncprobe_needs_command" -f -a "serve" -d 'Run the bundled sync-socket server (the protocol\'s reference implementation)'
complete -c syncprobe -n "__fish_syncprobe_needs_command" -f -a "replay" -d 'Serve a recorded session (watch-sync --record, or a browser HAR file) as a sync socket server'
complete -c syncprobe -n "__fish_syncprobe_needs_command" -f -a "proxy" -d 'Put a fault-injecting proxy (network and message faults) in front of a backend'
complete -c syncprobe -n "__fish_syncprobe_needs_command" -f -a "token" -d 'Mint an HS256 test token for a secured `serve` (development and CI only), or inspect one'
complete -c syncprobe -n "__fish_syncprobe_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -l timeout -d 'How long to wait for CONNECTED once the socket is open' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -l hold -d 'Keep the connection open this long after CONNECTED, showing what arrives' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -l url -d 'Base URL of the backend (ws, wss, http or https) [env: SYNCPROBE_URL, several separated by commas or spaces] [default: ws://localhost:3000; for `smoke` and `load`, the bundled server on a free port]. Repeatable on `connect`, `watch-sync`, `enqueue` and `smoke` (instances of one backend, tried in order) and `load` (which spreads its connections over them)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -l path -d 'Path of the sync socket; {org} is replaced by the organization id' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -l api-url -d 'Base URL of the REST API (default: derived from the socket URL, ws->http, wss->https)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -s H -l header -d 'Extra request header, `Name: value` (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -l token -d 'Bearer token for the upgrade and REST calls [env: SYNCPROBE_TOKEN, used when neither --token nor --token-file is given]' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -l token-file -d 'Read the bearer token from a file (surrounding whitespace is ignored)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -l token-in -d 'Where the token goes on the upgrade: an Authorization header, or a query parameter (--token-param) as browsers must' -r -f -a "header\t''
query\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -l token-param -d 'Query parameter that carries the token with --token-in query; its value is masked in every output, as `token` and `access_token` are' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -l origin -d 'Origin header for the upgrade' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -l subprotocol -d 'WebSocket subprotocol to request (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -l cacert -d 'Extra PEM file of CA certificates to trust (for wss:// and https://)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -l connect-timeout -d 'Deadline for DNS, TCP, TLS and the upgrade together' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -l max-message-size -d 'Largest WebSocket message (and frame) accepted from the server, in bytes (1 KiB to 64 MiB); a larger one ends the run (exit 5)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -l max-body-size -d 'Largest REST answer body read, in bytes (1 KiB to 256 MiB); a larger one is an error (exit 5)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -l color -d 'When to use colour' -r -f -a "auto\t'Colour when the stream is a terminal, honouring NO_COLOR, CLICOLOR_FORCE and TERM=dumb'
always\t''
never\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -l insecure -d 'Accept any TLS certificate (testing only)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -l json -d 'Write NDJSON records to stdout instead of text (see README, "--json")'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -s q -l quiet -d 'Print only errors and the final result'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand connect" -s V -l version -d 'Print version'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l expect -d 'Ordered pattern of event types to wait for (see below)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l items -d 'With --per-item: items that must be seen before the expectation can hold' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l fail-on -d 'Exit 1 as soon as an event of one of these types arrives (comma-separated)' -r -f -a "SYNC_QUEUED\t''
SYNC_PROCESSING\t''
SYNC_SUCCESS\t''
SYNC_CONFLICT\t''
SYNC_FAILED\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l allow-type -d 'Accept this event type in --expect and --fail-on although the protocol does not define it (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l item -d 'Consider only this item (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l where -d 'Consider only events whose field equals the value: FIELD=VALUE, dotted paths such as details.error (repeatable; all must hold)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l count -d 'Stop after this many events (after filters)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l since -d 'Replay the events the server kept after seq N (`?since=N`), then go on live; needs a Part 2 server (exit 5 on a Part 1 server)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l last -d 'Replay the server\'s last N events, then go on live: asks the server for its seq first (a short connection of its own), then opens with since = seq - N; needs a Part 2 server (exit 5 on a Part 1 server)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l duration -d 'Stop after watching this long (more than 0; without it, watch until Ctrl-C)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l timeout -d 'Bound the wait for CONNECTED and for --expect or --count (default 10s and 60s)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l reconnect-base -d 'First reconnect delay ceiling (full jitter, doubling per attempt)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l reconnect-cap -d 'Largest reconnect delay' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l reconnect-attempts -d 'Consecutive failed reconnect attempts before giving up (0 = never give up)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l ping-interval -d 'Ping the server this often; a ping unanswered by the next one means the connection is dead (with -v, round-trip times are shown)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l record -d 'Write every received frame to FILE as NDJSON, with its receive time' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l junit -d 'Write a JUnit XML report: one test case for the expectation and one per item' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l url -d 'Base URL of the backend (ws, wss, http or https) [env: SYNCPROBE_URL, several separated by commas or spaces] [default: ws://localhost:3000; for `smoke` and `load`, the bundled server on a free port]. Repeatable on `connect`, `watch-sync`, `enqueue` and `smoke` (instances of one backend, tried in order) and `load` (which spreads its connections over them)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l path -d 'Path of the sync socket; {org} is replaced by the organization id' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l api-url -d 'Base URL of the REST API (default: derived from the socket URL, ws->http, wss->https)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -s H -l header -d 'Extra request header, `Name: value` (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l token -d 'Bearer token for the upgrade and REST calls [env: SYNCPROBE_TOKEN, used when neither --token nor --token-file is given]' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l token-file -d 'Read the bearer token from a file (surrounding whitespace is ignored)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l token-in -d 'Where the token goes on the upgrade: an Authorization header, or a query parameter (--token-param) as browsers must' -r -f -a "header\t''
query\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l token-param -d 'Query parameter that carries the token with --token-in query; its value is masked in every output, as `token` and `access_token` are' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l origin -d 'Origin header for the upgrade' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l subprotocol -d 'WebSocket subprotocol to request (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l cacert -d 'Extra PEM file of CA certificates to trust (for wss:// and https://)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l connect-timeout -d 'Deadline for DNS, TCP, TLS and the upgrade together' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l max-message-size -d 'Largest WebSocket message (and frame) accepted from the server, in bytes (1 KiB to 64 MiB); a larger one ends the run (exit 5)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l max-body-size -d 'Largest REST answer body read, in bytes (1 KiB to 256 MiB); a larger one is an error (exit 5)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l color -d 'When to use colour' -r -f -a "auto\t'Colour when the stream is a terminal, honouring NO_COLOR, CLICOLOR_FORCE and TERM=dumb'
always\t''
never\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l strict -d 'Match the pattern exactly, with nothing between its events'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l per-item -d 'Apply the pattern to every item (pfaId) separately'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l lenient -d 'Report protocol violations as warnings instead of failing (exit 5)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l reconnect -d 'Reconnect when the connection is lost, resuming from the last seq when the server numbers its events; with several --url, a failed socket moves to the next URL (round-robin)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l fail-on-gap -d 'Exit 1 when the stream had a seq gap, a duplicate, a late (reordered) event or a truncated history, which are otherwise reported only'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l insecure -d 'Accept any TLS certificate (testing only)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -l json -d 'Write NDJSON records to stdout instead of text (see README, "--json")'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -s q -l quiet -d 'Print only errors and the final result'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand watch-sync" -s V -l version -d 'Print version'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l modification-id -d 'A pending modification to sync (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l priority -d 'Queue priority, 0-10 (higher runs first)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l count -d 'Synthetic items to queue (Part 2 servers such as `serve`)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l pfa-id -d 'Name the queued items (repeatable; Part 2 servers)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l outcome -d 'Outcome the server should simulate (Part 2 servers)' -r -f -a "success\t''
conflict\t''
failed\t''
retry-then-success\t''
mixed\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l expect-outcome -d 'With --wait: exit 1 unless every item ends with this outcome' -r -f -a "success\t''
conflict\t''
failed\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l timeout -d 'Bound the whole command, waiting included' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l junit -d 'With --wait: write a JUnit XML report (one test case per item)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l url -d 'Base URL of the backend (ws, wss, http or https) [env: SYNCPROBE_URL, several separated by commas or spaces] [default: ws://localhost:3000; for `smoke` and `load`, the bundled server on a free port]. Repeatable on `connect`, `watch-sync`, `enqueue` and `smoke` (instances of one backend, tried in order) and `load` (which spreads its connections over them)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l path -d 'Path of the sync socket; {org} is replaced by the organization id' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l api-url -d 'Base URL of the REST API (default: derived from the socket URL, ws->http, wss->https)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -s H -l header -d 'Extra request header, `Name: value` (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l token -d 'Bearer token for the upgrade and REST calls [env: SYNCPROBE_TOKEN, used when neither --token nor --token-file is given]' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l token-file -d 'Read the bearer token from a file (surrounding whitespace is ignored)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l token-in -d 'Where the token goes on the upgrade: an Authorization header, or a query parameter (--token-param) as browsers must' -r -f -a "header\t''
query\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l token-param -d 'Query parameter that carries the token with --token-in query; its value is masked in every output, as `token` and `access_token` are' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l origin -d 'Origin header for the upgrade' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l subprotocol -d 'WebSocket subprotocol to request (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l cacert -d 'Extra PEM file of CA certificates to trust (for wss:// and https://)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l connect-timeout -d 'Deadline for DNS, TCP, TLS and the upgrade together' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l max-message-size -d 'Largest WebSocket message (and frame) accepted from the server, in bytes (1 KiB to 64 MiB); a larger one ends the run (exit 5)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l max-body-size -d 'Largest REST answer body read, in bytes (1 KiB to 256 MiB); a larger one is an error (exit 5)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l color -d 'When to use colour' -r -f -a "auto\t'Colour when the stream is a terminal, honouring NO_COLOR, CLICOLOR_FORCE and TERM=dumb'
always\t''
never\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l wait -d 'Open the socket first, then follow every queued item to its terminal event'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l insecure -d 'Accept any TLS certificate (testing only)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -l json -d 'Write NDJSON records to stdout instead of text (see README, "--json")'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -s q -l quiet -d 'Print only errors and the final result'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand enqueue" -s V -l version -d 'Print version'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l items -d 'Items to enqueue and follow' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l timeout -d 'Bound of each waiting step (CONNECTED, the lifecycle of every item)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l junit -d 'Write a JUnit XML report: one test case per step and per item' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l url -d 'Base URL of the backend (ws, wss, http or https) [env: SYNCPROBE_URL, several separated by commas or spaces] [default: ws://localhost:3000; for `smoke` and `load`, the bundled server on a free port]. Repeatable on `connect`, `watch-sync`, `enqueue` and `smoke` (instances of one backend, tried in order) and `load` (which spreads its connections over them)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l path -d 'Path of the sync socket; {org} is replaced by the organization id' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l api-url -d 'Base URL of the REST API (default: derived from the socket URL, ws->http, wss->https)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -s H -l header -d 'Extra request header, `Name: value` (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l token -d 'Bearer token for the upgrade and REST calls [env: SYNCPROBE_TOKEN, used when neither --token nor --token-file is given]' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l token-file -d 'Read the bearer token from a file (surrounding whitespace is ignored)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l token-in -d 'Where the token goes on the upgrade: an Authorization header, or a query parameter (--token-param) as browsers must' -r -f -a "header\t''
query\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l token-param -d 'Query parameter that carries the token with --token-in query; its value is masked in every output, as `token` and `access_token` are' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l origin -d 'Origin header for the upgrade' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l subprotocol -d 'WebSocket subprotocol to request (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l cacert -d 'Extra PEM file of CA certificates to trust (for wss:// and https://)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l connect-timeout -d 'Deadline for DNS, TCP, TLS and the upgrade together' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l max-message-size -d 'Largest WebSocket message (and frame) accepted from the server, in bytes (1 KiB to 64 MiB); a larger one ends the run (exit 5)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l max-body-size -d 'Largest REST answer body read, in bytes (1 KiB to 256 MiB); a larger one is an error (exit 5)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l color -d 'When to use colour' -r -f -a "auto\t'Colour when the stream is a terminal, honouring NO_COLOR, CLICOLOR_FORCE and TERM=dumb'
always\t''
never\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l with-conflict -d 'Add the conflict step: queue a conflict, find it in GET /api/pems/conflicts, resolve it with use_local and see the item queued again succeed (Part 2 servers; skipped elsewhere)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l insecure -d 'Accept any TLS certificate (testing only)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -l json -d 'Write NDJSON records to stdout instead of text (see README, "--json")'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -s q -l quiet -d 'Print only errors and the final result'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand smoke" -s V -l version -d 'Print version'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l status -d 'List only the conflicts of this status' -r -f -a "unresolved\t''
resolved\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l resolve -d 'Resolve the conflict with this id (see the list)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l resolution -d 'How to resolve it: keep the local change (queued again), keep upstream\'s (marked synced), or write --merged-data (queued again)' -r -f -a "use_local\t''
use_pems\t''
merge\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l merged-data -d 'The merged record for --resolution merge: a JSON object' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l timeout -d 'Bound of each REST call, and of --wait from the resolution to the end' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l url -d 'Base URL of the backend (ws, wss, http or https) [env: SYNCPROBE_URL, several separated by commas or spaces] [default: ws://localhost:3000; for `smoke` and `load`, the bundled server on a free port]. Repeatable on `connect`, `watch-sync`, `enqueue` and `smoke` (instances of one backend, tried in order) and `load` (which spreads its connections over them)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l path -d 'Path of the sync socket; {org} is replaced by the organization id' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l api-url -d 'Base URL of the REST API (default: derived from the socket URL, ws->http, wss->https)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -s H -l header -d 'Extra request header, `Name: value` (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l token -d 'Bearer token for the upgrade and REST calls [env: SYNCPROBE_TOKEN, used when neither --token nor --token-file is given]' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l token-file -d 'Read the bearer token from a file (surrounding whitespace is ignored)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l token-in -d 'Where the token goes on the upgrade: an Authorization header, or a query parameter (--token-param) as browsers must' -r -f -a "header\t''
query\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l token-param -d 'Query parameter that carries the token with --token-in query; its value is masked in every output, as `token` and `access_token` are' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l origin -d 'Origin header for the upgrade' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l subprotocol -d 'WebSocket subprotocol to request (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l cacert -d 'Extra PEM file of CA certificates to trust (for wss:// and https://)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l connect-timeout -d 'Deadline for DNS, TCP, TLS and the upgrade together' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l max-message-size -d 'Largest WebSocket message (and frame) accepted from the server, in bytes (1 KiB to 64 MiB); a larger one ends the run (exit 5)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l max-body-size -d 'Largest REST answer body read, in bytes (1 KiB to 256 MiB); a larger one is an error (exit 5)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l color -d 'When to use colour' -r -f -a "auto\t'Colour when the stream is a terminal, honouring NO_COLOR, CLICOLOR_FORCE and TERM=dumb'
always\t''
never\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l wait -d 'Follow the item queued again over the sync socket until its terminal event'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l insecure -d 'Accept any TLS certificate (testing only)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -l json -d 'Write NDJSON records to stdout instead of text (see README, "--json")'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -s q -l quiet -d 'Print only errors and the final result'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand conflicts" -s V -l version -d 'Print version'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l timeout -d 'How long to wait for CONNECTED, for each REST call and for the probe' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l pings -d 'Pings sent by the ping layer (0 skips it)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l events -d 'Watch what arrives for the organization this long (counts by type, gaps, duplicates, foreign organizations)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l hold -d 'Keep the socket open this long without traffic of its own, to catch a proxy that closes idle connections' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l report -d 'Write a Markdown report for a ticket (redacted) to FILE' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l url -d 'Base URL of the backend (ws, wss, http or https) [env: SYNCPROBE_URL, several separated by commas or spaces] [default: ws://localhost:3000; for `smoke` and `load`, the bundled server on a free port]. Repeatable on `connect`, `watch-sync`, `enqueue` and `smoke` (instances of one backend, tried in order) and `load` (which spreads its connections over them)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l path -d 'Path of the sync socket; {org} is replaced by the organization id' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l api-url -d 'Base URL of the REST API (default: derived from the socket URL, ws->http, wss->https)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -s H -l header -d 'Extra request header, `Name: value` (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l token -d 'Bearer token for the upgrade and REST calls [env: SYNCPROBE_TOKEN, used when neither --token nor --token-file is given]' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l token-file -d 'Read the bearer token from a file (surrounding whitespace is ignored)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l token-in -d 'Where the token goes on the upgrade: an Authorization header, or a query parameter (--token-param) as browsers must' -r -f -a "header\t''
query\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l token-param -d 'Query parameter that carries the token with --token-in query; its value is masked in every output, as `token` and `access_token` are' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l origin -d 'Origin header for the upgrade' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l subprotocol -d 'WebSocket subprotocol to request (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l cacert -d 'Extra PEM file of CA certificates to trust (for wss:// and https://)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l connect-timeout -d 'Deadline for DNS, TCP, TLS and the upgrade together' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l max-message-size -d 'Largest WebSocket message (and frame) accepted from the server, in bytes (1 KiB to 64 MiB); a larger one ends the run (exit 5)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l max-body-size -d 'Largest REST answer body read, in bytes (1 KiB to 256 MiB); a larger one is an error (exit 5)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l color -d 'When to use colour' -r -f -a "auto\t'Colour when the stream is a terminal, honouring NO_COLOR, CLICOLOR_FORCE and TERM=dumb'
always\t''
never\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l probe -d 'Queue one test item (POST write-sync: a real write) and follow it to its end'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l redact-ids -d 'Also mask the organization id and item (pfa) ids in every output'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l insecure -d 'Accept any TLS certificate (testing only)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -l json -d 'Write NDJSON records to stdout instead of text (see README, "--json")'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -s q -l quiet -d 'Print only errors and the final result'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand doctor" -s V -l version -d 'Print version'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l watch -d 'Look again every INTERVAL (default 2s, at least 200ms) until Ctrl-C' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l count -d 'With --watch: stop after N looks' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l timeout -d 'Bound of each REST call' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l url -d 'Base URL of the backend (ws, wss, http or https) [env: SYNCPROBE_URL, several separated by commas or spaces] [default: ws://localhost:3000; for `smoke` and `load`, the bundled server on a free port]. Repeatable on `connect`, `watch-sync`, `enqueue` and `smoke` (instances of one backend, tried in order) and `load` (which spreads its connections over them)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l path -d 'Path of the sync socket; {org} is replaced by the organization id' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l api-url -d 'Base URL of the REST API (default: derived from the socket URL, ws->http, wss->https)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -s H -l header -d 'Extra request header, `Name: value` (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l token -d 'Bearer token for the upgrade and REST calls [env: SYNCPROBE_TOKEN, used when neither --token nor --token-file is given]' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l token-file -d 'Read the bearer token from a file (surrounding whitespace is ignored)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l token-in -d 'Where the token goes on the upgrade: an Authorization header, or a query parameter (--token-param) as browsers must' -r -f -a "header\t''
query\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l token-param -d 'Query parameter that carries the token with --token-in query; its value is masked in every output, as `token` and `access_token` are' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l origin -d 'Origin header for the upgrade' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l subprotocol -d 'WebSocket subprotocol to request (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l cacert -d 'Extra PEM file of CA certificates to trust (for wss:// and https://)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l connect-timeout -d 'Deadline for DNS, TCP, TLS and the upgrade together' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l max-message-size -d 'Largest WebSocket message (and frame) accepted from the server, in bytes (1 KiB to 64 MiB); a larger one ends the run (exit 5)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l max-body-size -d 'Largest REST answer body read, in bytes (1 KiB to 256 MiB); a larger one is an error (exit 5)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l color -d 'When to use colour' -r -f -a "auto\t'Colour when the stream is a terminal, honouring NO_COLOR, CLICOLOR_FORCE and TERM=dumb'
always\t''
never\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l insecure -d 'Accept any TLS certificate (testing only)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -l json -d 'Write NDJSON records to stdout instead of text (see README, "--json")'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -s q -l quiet -d 'Print only errors and the final result'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand status" -s V -l version -d 'Print version'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -s c -l connections -d 'Sockets to open' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l orgs -d 'Organizations to spread them over, named PREFIX-1 … PREFIX-K' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l org-prefix -d 'Prefix of the generated organization names' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l org -d 'Use these organizations instead (repeatable or comma-separated)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l ramp-rate -d 'Connections opened per second (0 = as fast as --max-pending allows)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l max-pending -d 'Handshakes in flight at once' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l duration -d 'Keep the sockets open at least this long once they are all up' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l events -d 'Events per organization (publish), or items per organization (queue: 3 events each)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l rate -d 'Events per second per organization (0 = as fast as possible)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l via -d 'How events are produced: POST /api/ws/publish, or the write-sync queue' -r -f -a "publish\t''
queue\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l drain-timeout -d 'How long to wait for the last deliveries after the source is done' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l timeout -d 'Wait for each CONNECTED' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l threshold -d 'Pass/fail rule, like \'p99<50ms\', \'connect_p95<200ms\', \'loss==0\' (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l report -d 'Write an HTML report: run facts, figures, thresholds and charts (connections, connect time, delivery rate, latency over time, latency histogram, errors)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l summary-file -d 'Write the summary (the `--json` summary record\'s data) to FILE, for a later --baseline' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l baseline -d 'Compare with an earlier run\'s summary (--summary-file, or its --json output): every figure with its change, in the terminal summary and the report' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l junit -d 'Write JUnit XML: one test case per threshold and one for completeness' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l url -d 'Base URL of the backend (ws, wss, http or https) [env: SYNCPROBE_URL, several separated by commas or spaces] [default: ws://localhost:3000; for `smoke` and `load`, the bundled server on a free port]. Repeatable on `connect`, `watch-sync`, `enqueue` and `smoke` (instances of one backend, tried in order) and `load` (which spreads its connections over them)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l path -d 'Path of the sync socket; {org} is replaced by the organization id' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l api-url -d 'Base URL of the REST API (default: derived from the socket URL, ws->http, wss->https)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -s H -l header -d 'Extra request header, `Name: value` (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l token -d 'Bearer token for the upgrade and REST calls [env: SYNCPROBE_TOKEN, used when neither --token nor --token-file is given]' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l token-file -d 'Read the bearer token from a file (surrounding whitespace is ignored)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l token-in -d 'Where the token goes on the upgrade: an Authorization header, or a query parameter (--token-param) as browsers must' -r -f -a "header\t''
query\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l token-param -d 'Query parameter that carries the token with --token-in query; its value is masked in every output, as `token` and `access_token` are' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l origin -d 'Origin header for the upgrade' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l subprotocol -d 'WebSocket subprotocol to request (repeatable)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l cacert -d 'Extra PEM file of CA certificates to trust (for wss:// and https://)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l connect-timeout -d 'Deadline for DNS, TCP, TLS and the upgrade together' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l max-message-size -d 'Largest WebSocket message (and frame) accepted from the server, in bytes (1 KiB to 64 MiB); a larger one ends the run (exit 5)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l max-body-size -d 'Largest REST answer body read, in bytes (1 KiB to 256 MiB); a larger one is an error (exit 5)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l color -d 'When to use colour' -r -f -a "auto\t'Colour when the stream is a terminal, honouring NO_COLOR, CLICOLOR_FORCE and TERM=dumb'
always\t''
never\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l passive -d 'Produce no events: measure what someone else produces (needs --duration)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l allow-loss -d 'Pass although events were missing, duplicated or reordered (by default any loss fails the run, exit 1)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l insecure -d 'Accept any TLS certificate (testing only)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -l json -d 'Write NDJSON records to stdout instead of text (see README, "--json")'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -s q -l quiet -d 'Print only errors and the final result'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand load" -s V -l version -d 'Print version'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l listen -d 'Address to listen on (port 0 picks a free port)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l history -d 'Events retained per organization for `?since=` resume' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l lag-limit -d 'Events a client may fall behind before it is closed with 1013' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l workers -d 'Concurrent write-sync attempts' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l processing-time -d 'Time one simulated write attempt takes' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l max-retries -d 'Retries of a retryable failure before SYNC_FAILED' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l retry-base -d 'Backoff before the first retry; doubles for each further retry' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l ping-interval -d 'Interval of server pings; a client silent for two intervals is dropped (0 = off)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l write-timeout -d 'A write to a client blocked this long drops the client' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l shutdown-grace -d 'Longest the whole shutdown may take; connections left then are dropped (exit 0)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l history-bytes -d 'Bytes of history retained per organization (the oldest events go first)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l history-total-bytes -d 'Bytes of history retained across organizations (the oldest events go first)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l max-queued-bytes -d 'Bytes a client may fall behind before it is closed with 1013' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l slow-grace -d 'How long a large burst waits for a client that is behind before overtaking it' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l max-event-size -d 'Largest publish body (one event), in bytes (larger: HTTP 413)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l max-paced-publishes -d 'Paced publishes (ratePerSec > 0) running at once (more: HTTP 429)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l max-queued-items -d 'Write-sync items waiting or in progress across organizations; with --redis per organization across instances (more: HTTP 503)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l handshake-timeout -d 'Time a new sync socket has to answer the server\'s first ping (more: close 4408; 0 = off)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l header-timeout -d 'Time a client has to send a request\'s head, from connecting or from the previous response (so also the keep-alive idle timeout)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l max-header-bytes -d 'Largest request head, in bytes (larger: HTTP 431)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l max-pending-connections -d 'Connections that have not sent a complete request head yet, in total (more: closed at once)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l max-pending-per-ip -d 'Connections that have not sent a complete request head yet, per client IP (more: closed at once)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l metrics-listen -d 'Serve /metrics on this address instead of the main port (e.g. 127.0.0.1:9090)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l metrics-orgs -d 'Organizations with a /metrics label of their own: the busiest by open sockets on the gauge, the first seen on counters; the rest are summed under org="_other"' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l max-message-size -d 'Largest client message accepted on sync sockets, in bytes (larger: close 1009)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l jwt-secret -d 'Require HS256 tokens signed with this secret (on every upgrade and the REST API)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l jwt-secret-file -d 'Read the HS256 secret from a file (surrounding whitespace is ignored)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l jwt-public-key -d 'Require tokens signed by this public key (PEM): RSA for RS256, EC P-256 for ES256' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l jwt-issuer -d 'Tokens must carry this issuer (iss)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l jwt-audience -d 'Tokens must carry this audience (aud); without it, aud is not checked' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l jwt-leeway -d 'Clock tolerance for exp and nbf (at most 1h)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l allowed-origin -d 'Origin allowed to open sockets and call the API, like https://app.example.com or https://*.example.com (repeatable or comma-separated; default: any)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l org-id-syntax -d 'How organization ids are checked' -r -f -a "strict\t'1–128 characters from A-Z a-z 0-9 . _ : -, not . or ..'
any\t'Any non-empty id'"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l org-allow-file -d 'Serve only the organizations listed in this file (one per line, # comments); SIGHUP or POST /api/ws/admin/reload-orgs re-reads it' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l rate-limit -d 'Client frames per second per connection (more: close 4429; 0 = off)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l rate-burst -d 'Client frames a connection may send at once before --rate-limit applies' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l idle-timeout -d 'Close a sync socket silent (no frame, no pong) this long with 4408 (0 = never)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l max-connections -d 'Open sync sockets in total (0 = unlimited)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l max-connections-per-org -d 'Open sync sockets per organization (0 = unlimited)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l cap-response -d 'Over a cap: refuse the upgrade with HTTP 503, or accept and close with 4503' -r -f -a "http\t'Refuse the upgrade with HTTP 503 and a JSON body'
close\t'Accept the upgrade, then close with 4503 (browsers cannot read an HTTP status)'"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l ip-upgrade-rate -d 'Upgrade attempts per second per client IP (more: HTTP 429; 0 = off)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l ip-upgrade-burst -d 'Upgrade attempts a client IP may make at once before --ip-upgrade-rate applies' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l redis -d 'Share events, their history and the write-sync queue with other instances through this Redis (redis://[:PASSWORD@]HOST:PORT[/DB], or rediss:// for TLS)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l claim-after -d 'With --redis: a write-sync item another instance took and has not touched for this long (it died or lost Redis) is claimed and finished by an idle worker here' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l tls-cert -d 'Serve https:// and wss:// with this certificate chain (PEM; needs --tls-key)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l tls-key -d 'The private key of --tls-cert (PEM)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l color -d 'When to use colour' -r -f -a "auto\t'Colour when the stream is a terminal, honouring NO_COLOR, CLICOLOR_FORCE and TERM=dumb'
always\t''
never\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -l json -d 'Write NDJSON records to stdout instead of text (see README, "--json")'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -s q -l quiet -d 'Print only errors and the final result'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand serve" -s V -l version -d 'Print version'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand replay" -l listen -d 'Address to listen on (port 0 picks a free port)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand replay" -l speed -d 'Playback speed: 2 is twice as fast, 0.5 half as fast; 0 or max sends without waiting' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand replay" -l org -d 'Serve the recording\'s one organization as ORG (its organizationId rewritten)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand replay" -l max-message-size -d 'Largest recorded frame accepted, in bytes (a larger one makes the file an error)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand replay" -l ping-interval -d 'Interval of server pings; a client silent for a whole interval is dropped (0 = off)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand replay" -l color -d 'When to use colour' -r -f -a "auto\t'Colour when the stream is a terminal, honouring NO_COLOR, CLICOLOR_FORCE and TERM=dumb'
always\t''
never\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand replay" -l loop -d 'Start over at the end of the recording (seq keeps counting)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand replay" -l step -d 'Send each frame only when Enter is pressed on stdin (every waiting socket gets its next frame); when stdin ends, the rest plays at --speed'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand replay" -l json -d 'Write NDJSON records to stdout instead of text (see README, "--json")'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand replay" -s q -l quiet -d 'Print only errors and the final result'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand replay" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand replay" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand replay" -s V -l version -d 'Print version'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l listen -d 'Address to listen on, for HTTP and WebSocket (port 0 picks a free port)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l upstream -d 'The backend\'s base URL (ws, wss, http or https; a path is a prefix)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l latency -d 'Delay every chunk by DURATION (from its arrival)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l jitter -d 'Vary every --latency by up to this much either way' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l bandwidth -d 'Limit the rate: 500kbit, 2mbit, 64kB (per second)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l slicer -d 'Split writes into pieces of about BYTES (default 64), 1 ms apart' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l timeout -d 'Stop forwarding (data is dropped), then close after DURATION (none: never)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l reset-peer -d 'Reset the TCP connection (RST) when data flows, after DURATION (none: at once)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l limit-data -d 'Close the connection once BYTES went through' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l profile -d 'A browser\'s network preset (Chrome DevTools\' figures, see below)' -r -f -a "slow-3g\t''
fast-3g\t''
slow-4g\t''
fast-4g\t''
offline\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l cut-every -d 'Drop every connection this often (and refuse new ones for --cut-for)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l cut-for -d 'How long each cut lasts' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l drop -d 'Drop the upstream\'s frames of TYPE (with probability P, default 1)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l duplicate -d 'Send the upstream\'s frames of TYPE twice' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l delay -d 'Hold frames of TYPE for DURATION (later frames wait behind them)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l reorder -d 'Swap a frame with the next one, with probability P (CONNECTED stays first)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l corrupt -d 'Make frames of TYPE invalid JSON' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l hold-connected -d 'Hold CONNECTED for DURATION' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l close-after -d 'Close the client\'s socket with CODE after N frames from the upstream' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l refuse-upgrade -d 'Refuse WebSocket upgrades with STATUS (401, 429, 503 …), with probability P' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l where -d 'Message faults match only frames whose field equals the value: FIELD=VALUE, dotted paths such as details.error (repeatable; all must hold)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l seed -d 'Seed of every random decision (default: a random seed, printed)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l log -d 'Write every decision to FILE as NDJSON (time, connection, fault, frame, seq)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l control -d 'Serve the control API on ADDR (port 0 picks a free port)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l color -d 'When to use colour' -r -f -a "auto\t'Colour when the stream is a terminal, honouring NO_COLOR, CLICOLOR_FORCE and TERM=dumb'
always\t''
never\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l swallow-pings -d 'Leave the client\'s pings unanswered and keep the upstream\'s from it'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -l json -d 'Write NDJSON records to stdout instead of text (see README, "--json")'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -s q -l quiet -d 'Print only errors and the final result'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand proxy" -s V -l version -d 'Print version'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -l secret -d 'The HS256 secret (the one `serve --jwt-secret` was given)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -l secret-file -d 'Read the secret from a file (surrounding whitespace is ignored)' -r -F
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -l org -d 'Organization the token allows (repeatable; `*` allows every organization)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -l claims -d 'The shape of the claims (see below) [default: simple]' -r -f -a "simple\t'{"org": …}: syncprobe\'s own'
pfa\t'{"organizations": [{…, "permissions"}]}: the original backend\'s'
ids\t'{"organizationIds": […], "role"}: the original\'s older middleware'"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -l permission -d 'Permission granted in every organization, with --claims pfa (repeatable; perm_Read and perm_Sync when not given)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -l user -d 'userId and username, with --claims pfa or ids [default: syncprobe]' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -l service-status -d 'serviceStatus, with --claims pfa (serve refuses anything but active) [default: active]' -r -f -a "active\t''
suspended\t''
locked\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -l ttl -d 'Lifetime: exp is now plus this [default: 1h]' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -l issuer -d 'Issuer claim (iss)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -l audience -d 'Audience claim (aud)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -l subject -d 'Subject claim (sub)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -l not-before -d 'Not valid before now plus this (nbf)' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -l color -d 'When to use colour' -r -f -a "auto\t'Colour when the stream is a terminal, honouring NO_COLOR, CLICOLOR_FORCE and TERM=dumb'
always\t''
never\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -l json -d 'Write NDJSON records to stdout instead of text (see README, "--json")'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -s q -l quiet -d 'Print only errors and the final result'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -s V -l version -d 'Print version'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -f -a "inspect" -d 'Decode a token without verifying it and say whether it is usable'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and not __fish_seen_subcommand_from inspect help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and __fish_seen_subcommand_from inspect" -l org -d 'Say whether the token allows this organization' -r
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and __fish_seen_subcommand_from inspect" -l color -d 'When to use colour' -r -f -a "auto\t'Colour when the stream is a terminal, honouring NO_COLOR, CLICOLOR_FORCE and TERM=dumb'
always\t''
never\t''"
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and __fish_seen_subcommand_from inspect" -l json -d 'Write NDJSON records to stdout instead of text (see README, "--json")'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and __fish_seen_subcommand_from inspect" -s q -l quiet -d 'Print only errors and the final result'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and __fish_seen_subcommand_from inspect" -s v -l verbose -d 'Print more detail (repeat for more)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and __fish_seen_subcommand_from inspect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and __fish_seen_subcommand_from inspect" -s V -l version -d 'Print version'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "inspect" -d 'Decode a token without verifying it and say whether it is usable'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand help; and not __fish_seen_subcommand_from connect watch-sync enqueue smoke conflicts doctor status load serve replay proxy token help" -f -a "connect" -d 'Open a sync socket, check CONNECTED, and close'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand help; and not __fish_seen_subcommand_from connect watch-sync enqueue smoke conflicts doctor status load serve replay proxy token help" -f -a "watch-sync" -d 'Stream an organization\'s sync events and check them against expectations'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand help; and not __fish_seen_subcommand_from connect watch-sync enqueue smoke conflicts doctor status load serve replay proxy token help" -f -a "enqueue" -d 'Queue writes through POST /api/pems/write-sync, optionally following them to the end'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand help; and not __fish_seen_subcommand_from connect watch-sync enqueue smoke conflicts doctor status load serve replay proxy token help" -f -a "smoke" -d 'Run the whole verification checklist against a backend (or the bundled server)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand help; and not __fish_seen_subcommand_from connect watch-sync enqueue smoke conflicts doctor status load serve replay proxy token help" -f -a "conflicts" -d 'List an organization\'s sync conflicts, or resolve one (and follow its item again)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand help; and not __fish_seen_subcommand_from connect watch-sync enqueue smoke conflicts doctor status load serve replay proxy token help" -f -a "doctor" -d 'Diagnose one organization\'s socket layer by layer, with a report to paste into a ticket'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand help; and not __fish_seen_subcommand_from connect watch-sync enqueue smoke conflicts doctor status load serve replay proxy token help" -f -a "status" -d 'Show an organization\'s queue health, backlog and sockets (--watch to refresh)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand help; and not __fish_seen_subcommand_from connect watch-sync enqueue smoke conflicts doctor status load serve replay proxy token help" -f -a "load" -d 'Open many sync sockets and measure connect time, fan-out latency and completeness'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand help; and not __fish_seen_subcommand_from connect watch-sync enqueue smoke conflicts doctor status load serve replay proxy token help" -f -a "serve" -d 'Run the bundled sync-socket server (the protocol\'s reference implementation)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand help; and not __fish_seen_subcommand_from connect watch-sync enqueue smoke conflicts doctor status load serve replay proxy token help" -f -a "replay" -d 'Serve a recorded session (watch-sync --record, or a browser HAR file) as a sync socket server'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand help; and not __fish_seen_subcommand_from connect watch-sync enqueue smoke conflicts doctor status load serve replay proxy token help" -f -a "proxy" -d 'Put a fault-injecting proxy (network and message faults) in front of a backend'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand help; and not __fish_seen_subcommand_from connect watch-sync enqueue smoke conflicts doctor status load serve replay proxy token help" -f -a "token" -d 'Mint an HS256 test token for a secured `serve` (development and CI only), or inspect one'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand help; and not __fish_seen_subcommand_from connect watch-sync enqueue smoke conflicts doctor status load serve replay proxy token help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c syncprobe -n "__fish_syncprobe_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "inspect" -d 'Decode a token without verifying it and say whether it is usable'
