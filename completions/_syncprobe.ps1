
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'syncprobe' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'syncprobe'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'syncprobe' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Write NDJSON records to stdout instead of text (see README, "--json")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('connect', 'connect', [CompletionResultType]::ParameterValue, 'Open a sync socket, check CONNECTED, and close')
            [CompletionResult]::new('watch-sync', 'watch-sync', [CompletionResultType]::ParameterValue, 'Stream an organization''s sync events and check them against expectations')
            [CompletionResult]::new('enqueue', 'enqueue', [CompletionResultType]::ParameterValue, 'Queue writes through POST /api/pems/write-sync, optionally following them to the end')
            [CompletionResult]::new('smoke', 'smoke', [CompletionResultType]::ParameterValue, 'Run the whole verification checklist against a backend (or the bundled server)')
            [CompletionResult]::new('conflicts', 'conflicts', [CompletionResultType]::ParameterValue, 'List an organization''s sync conflicts, or resolve one (and follow its item again)')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Diagnose one organization''s socket layer by layer, with a report to paste into a ticket')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show an organization''s queue health, backlog and sockets (--watch to refresh)')
            [CompletionResult]::new('load', 'load', [CompletionResultType]::ParameterValue, 'Open many sync sockets and measure connect time, fan-out latency and completeness')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the bundled sync-socket server (the protocol''s reference implementation)')
            [CompletionResult]::new('replay', 'replay', [CompletionResultType]::ParameterValue, 'Serve a recorded session (watch-sync --record, or a browser HAR file) as a sync socket server')
            [CompletionResult]::new('proxy', 'proxy', [CompletionResultType]::ParameterValue, 'Put a fault-injecting proxy (network and message faults) in front of a backend')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Mint an HS256 test token for a secured `serve` (development and CI only), or inspect one')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'syncprobe;connect' {
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for CONNECTED once the socket is open')
            [CompletionResult]::new('--hold', '--hold', [CompletionResultType]::ParameterName, 'Keep the connection open this long after CONNECTED, showing what arrives')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Base URL of the backend (ws, wss, http or https) [env: SYNCPROBE_URL, several separated by commas or spaces] [default: ws://localhost:3000; for `smoke` and `load`, the bundled server on a free port]. Repeatable on `connect`, `watch-sync`, `enqueue` and `smoke` (instances of one backend, tried in order) and `load` (which spreads its connections over them)')
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'Path of the sync socket; {org} is replaced by the organization id')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Base URL of the REST API (default: derived from the socket URL, ws->http, wss->https)')
            [CompletionResult]::new('-H', '-H ', [CompletionResultType]::ParameterName, 'Extra request header, `Name: value` (repeatable)')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'Extra request header, `Name: value` (repeatable)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token for the upgrade and REST calls [env: SYNCPROBE_TOKEN, used when neither --token nor --token-file is given]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the bearer token from a file (surrounding whitespace is ignored)')
            [CompletionResult]::new('--token-in', '--token-in', [CompletionResultType]::ParameterName, 'Where the token goes on the upgrade: an Authorization header, or a query parameter (--token-param) as browsers must')
            [CompletionResult]::new('--token-param', '--token-param', [CompletionResultType]::ParameterName, 'Query parameter that carries the token with --token-in query; its value is masked in every output, as `token` and `access_token` are')
            [CompletionResult]::new('--origin', '--origin', [CompletionResultType]::ParameterName, 'Origin header for the upgrade')
            [CompletionResult]::new('--subprotocol', '--subprotocol', [CompletionResultType]::ParameterName, 'WebSocket subprotocol to request (repeatable)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'Extra PEM file of CA certificates to trust (for wss:// and https://)')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Deadline for DNS, TCP, TLS and the upgrade together')
            [CompletionResult]::new('--max-message-size', '--max-message-size', [CompletionResultType]::ParameterName, 'Largest WebSocket message (and frame) accepted from the server, in bytes (1 KiB to 64 MiB); a larger one ends the run (exit 5)')
            [CompletionResult]::new('--max-body-size', '--max-body-size', [CompletionResultType]::ParameterName, 'Largest REST answer body read, in bytes (1 KiB to 256 MiB); a larger one is an error (exit 5)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Accept any TLS certificate (testing only)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Write NDJSON records to stdout instead of text (see README, "--json")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'syncprobe;watch-sync' {
            [CompletionResult]::new('--expect', '--expect', [CompletionResultType]::ParameterName, 'Ordered pattern of event types to wait for (see below)')
            [CompletionResult]::new('--items', '--items', [CompletionResultType]::ParameterName, 'With --per-item: items that must be seen before the expectation can hold')
            [CompletionResult]::new('--fail-on', '--fail-on', [CompletionResultType]::ParameterName, 'Exit 1 as soon as an event of one of these types arrives (comma-separated)')
            [CompletionResult]::new('--allow-type', '--allow-type', [CompletionResultType]::ParameterName, 'Accept this event type in --expect and --fail-on although the protocol does not define it (repeatable)')
            [CompletionResult]::new('--item', '--item', [CompletionResultType]::ParameterName, 'Consider only this item (repeatable)')
            [CompletionResult]::new('--where', '--where', [CompletionResultType]::ParameterName, 'Consider only events whose field equals the value: FIELD=VALUE, dotted paths such as details.error (repeatable; all must hold)')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Stop after this many events (after filters)')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Replay the events the server kept after seq N (`?since=N`), then go on live; needs a Part 2 server (exit 5 on a Part 1 server)')
            [CompletionResult]::new('--last', '--last', [CompletionResultType]::ParameterName, 'Replay the server''s last N events, then go on live: asks the server for its seq first (a short connection of its own), then opens with since = seq - N; needs a Part 2 server (exit 5 on a Part 1 server)')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'Stop after watching this long (more than 0; without it, watch until Ctrl-C)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Bound the wait for CONNECTED and for --expect or --count (default 10s and 60s)')
            [CompletionResult]::new('--reconnect-base', '--reconnect-base', [CompletionResultType]::ParameterName, 'First reconnect delay ceiling (full jitter, doubling per attempt)')
            [CompletionResult]::new('--reconnect-cap', '--reconnect-cap', [CompletionResultType]::ParameterName, 'Largest reconnect delay')
            [CompletionResult]::new('--reconnect-attempts', '--reconnect-attempts', [CompletionResultType]::ParameterName, 'Consecutive failed reconnect attempts before giving up (0 = never give up)')
            [CompletionResult]::new('--ping-interval', '--ping-interval', [CompletionResultType]::ParameterName, 'Ping the server this often; a ping unanswered by the next one means the connection is dead (with -v, round-trip times are shown)')
            [CompletionResult]::new('--record', '--record', [CompletionResultType]::ParameterName, 'Write every received frame to FILE as NDJSON, with its receive time')
            [CompletionResult]::new('--junit', '--junit', [CompletionResultType]::ParameterName, 'Write a JUnit XML report: one test case for the expectation and one per item')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Base URL of the backend (ws, wss, http or https) [env: SYNCPROBE_URL, several separated by commas or spaces] [default: ws://localhost:3000; for `smoke` and `load`, the bundled server on a free port]. Repeatable on `connect`, `watch-sync`, `enqueue` and `smoke` (instances of one backend, tried in order) and `load` (which spreads its connections over them)')
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'Path of the sync socket; {org} is replaced by the organization id')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Base URL of the REST API (default: derived from the socket URL, ws->http, wss->https)')
            [CompletionResult]::new('-H', '-H ', [CompletionResultType]::ParameterName, 'Extra request header, `Name: value` (repeatable)')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'Extra request header, `Name: value` (repeatable)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token for the upgrade and REST calls [env: SYNCPROBE_TOKEN, used when neither --token nor --token-file is given]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the bearer token from a file (surrounding whitespace is ignored)')
            [CompletionResult]::new('--token-in', '--token-in', [CompletionResultType]::ParameterName, 'Where the token goes on the upgrade: an Authorization header, or a query parameter (--token-param) as browsers must')
            [CompletionResult]::new('--token-param', '--token-param', [CompletionResultType]::ParameterName, 'Query parameter that carries the token with --token-in query; its value is masked in every output, as `token` and `access_token` are')
            [CompletionResult]::new('--origin', '--origin', [CompletionResultType]::ParameterName, 'Origin header for the upgrade')
            [CompletionResult]::new('--subprotocol', '--subprotocol', [CompletionResultType]::ParameterName, 'WebSocket subprotocol to request (repeatable)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'Extra PEM file of CA certificates to trust (for wss:// and https://)')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Deadline for DNS, TCP, TLS and the upgrade together')
            [CompletionResult]::new('--max-message-size', '--max-message-size', [CompletionResultType]::ParameterName, 'Largest WebSocket message (and frame) accepted from the server, in bytes (1 KiB to 64 MiB); a larger one ends the run (exit 5)')
            [CompletionResult]::new('--max-body-size', '--max-body-size', [CompletionResultType]::ParameterName, 'Largest REST answer body read, in bytes (1 KiB to 256 MiB); a larger one is an error (exit 5)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Match the pattern exactly, with nothing between its events')
            [CompletionResult]::new('--per-item', '--per-item', [CompletionResultType]::ParameterName, 'Apply the pattern to every item (pfaId) separately')
            [CompletionResult]::new('--lenient', '--lenient', [CompletionResultType]::ParameterName, 'Report protocol violations as warnings instead of failing (exit 5)')
            [CompletionResult]::new('--reconnect', '--reconnect', [CompletionResultType]::ParameterName, 'Reconnect when the connection is lost, resuming from the last seq when the server numbers its events; with several --url, a failed socket moves to the next URL (round-robin)')
            [CompletionResult]::new('--fail-on-gap', '--fail-on-gap', [CompletionResultType]::ParameterName, 'Exit 1 when the stream had a seq gap, a duplicate, a late (reordered) event or a truncated history, which are otherwise reported only')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Accept any TLS certificate (testing only)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Write NDJSON records to stdout instead of text (see README, "--json")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'syncprobe;enqueue' {
            [CompletionResult]::new('--modification-id', '--modification-id', [CompletionResultType]::ParameterName, 'A pending modification to sync (repeatable)')
            [CompletionResult]::new('--priority', '--priority', [CompletionResultType]::ParameterName, 'Queue priority, 0-10 (higher runs first)')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Synthetic items to queue (Part 2 servers such as `serve`)')
            [CompletionResult]::new('--pfa-id', '--pfa-id', [CompletionResultType]::ParameterName, 'Name the queued items (repeatable; Part 2 servers)')
            [CompletionResult]::new('--outcome', '--outcome', [CompletionResultType]::ParameterName, 'Outcome the server should simulate (Part 2 servers)')
            [CompletionResult]::new('--expect-outcome', '--expect-outcome', [CompletionResultType]::ParameterName, 'With --wait: exit 1 unless every item ends with this outcome')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Bound the whole command, waiting included')
            [CompletionResult]::new('--junit', '--junit', [CompletionResultType]::ParameterName, 'With --wait: write a JUnit XML report (one test case per item)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Base URL of the backend (ws, wss, http or https) [env: SYNCPROBE_URL, several separated by commas or spaces] [default: ws://localhost:3000; for `smoke` and `load`, the bundled server on a free port]. Repeatable on `connect`, `watch-sync`, `enqueue` and `smoke` (instances of one backend, tried in order) and `load` (which spreads its connections over them)')
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'Path of the sync socket; {org} is replaced by the organization id')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Base URL of the REST API (default: derived from the socket URL, ws->http, wss->https)')
            [CompletionResult]::new('-H', '-H ', [CompletionResultType]::ParameterName, 'Extra request header, `Name: value` (repeatable)')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'Extra request header, `Name: value` (repeatable)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token for the upgrade and REST calls [env: SYNCPROBE_TOKEN, used when neither --token nor --token-file is given]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the bearer token from a file (surrounding whitespace is ignored)')
            [CompletionResult]::new('--token-in', '--token-in', [CompletionResultType]::ParameterName, 'Where the token goes on the upgrade: an Authorization header, or a query parameter (--token-param) as browsers must')
            [CompletionResult]::new('--token-param', '--token-param', [CompletionResultType]::ParameterName, 'Query parameter that carries the token with --token-in query; its value is masked in every output, as `token` and `access_token` are')
            [CompletionResult]::new('--origin', '--origin', [CompletionResultType]::ParameterName, 'Origin header for the upgrade')
            [CompletionResult]::new('--subprotocol', '--subprotocol', [CompletionResultType]::ParameterName, 'WebSocket subprotocol to request (repeatable)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'Extra PEM file of CA certificates to trust (for wss:// and https://)')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Deadline for DNS, TCP, TLS and the upgrade together')
            [CompletionResult]::new('--max-message-size', '--max-message-size', [CompletionResultType]::ParameterName, 'Largest WebSocket message (and frame) accepted from the server, in bytes (1 KiB to 64 MiB); a larger one ends the run (exit 5)')
            [CompletionResult]::new('--max-body-size', '--max-body-size', [CompletionResultType]::ParameterName, 'Largest REST answer body read, in bytes (1 KiB to 256 MiB); a larger one is an error (exit 5)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Open the socket first, then follow every queued item to its terminal event')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Accept any TLS certificate (testing only)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Write NDJSON records to stdout instead of text (see README, "--json")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'syncprobe;smoke' {
            [CompletionResult]::new('--items', '--items', [CompletionResultType]::ParameterName, 'Items to enqueue and follow')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Bound of each waiting step (CONNECTED, the lifecycle of every item)')
            [CompletionResult]::new('--junit', '--junit', [CompletionResultType]::ParameterName, 'Write a JUnit XML report: one test case per step and per item')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Base URL of the backend (ws, wss, http or https) [env: SYNCPROBE_URL, several separated by commas or spaces] [default: ws://localhost:3000; for `smoke` and `load`, the bundled server on a free port]. Repeatable on `connect`, `watch-sync`, `enqueue` and `smoke` (instances of one backend, tried in order) and `load` (which spreads its connections over them)')
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'Path of the sync socket; {org} is replaced by the organization id')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Base URL of the REST API (default: derived from the socket URL, ws->http, wss->https)')
            [CompletionResult]::new('-H', '-H ', [CompletionResultType]::ParameterName, 'Extra request header, `Name: value` (repeatable)')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'Extra request header, `Name: value` (repeatable)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token for the upgrade and REST calls [env: SYNCPROBE_TOKEN, used when neither --token nor --token-file is given]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the bearer token from a file (surrounding whitespace is ignored)')
            [CompletionResult]::new('--token-in', '--token-in', [CompletionResultType]::ParameterName, 'Where the token goes on the upgrade: an Authorization header, or a query parameter (--token-param) as browsers must')
            [CompletionResult]::new('--token-param', '--token-param', [CompletionResultType]::ParameterName, 'Query parameter that carries the token with --token-in query; its value is masked in every output, as `token` and `access_token` are')
            [CompletionResult]::new('--origin', '--origin', [CompletionResultType]::ParameterName, 'Origin header for the upgrade')
            [CompletionResult]::new('--subprotocol', '--subprotocol', [CompletionResultType]::ParameterName, 'WebSocket subprotocol to request (repeatable)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'Extra PEM file of CA certificates to trust (for wss:// and https://)')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Deadline for DNS, TCP, TLS and the upgrade together')
            [CompletionResult]::new('--max-message-size', '--max-message-size', [CompletionResultType]::ParameterName, 'Largest WebSocket message (and frame) accepted from the server, in bytes (1 KiB to 64 MiB); a larger one ends the run (exit 5)')
            [CompletionResult]::new('--max-body-size', '--max-body-size', [CompletionResultType]::ParameterName, 'Largest REST answer body read, in bytes (1 KiB to 256 MiB); a larger one is an error (exit 5)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--with-conflict', '--with-conflict', [CompletionResultType]::ParameterName, 'Add the conflict step: queue a conflict, find it in GET /api/pems/conflicts, resolve it with use_local and see the item queued again succeed (Part 2 servers; skipped elsewhere)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Accept any TLS certificate (testing only)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Write NDJSON records to stdout instead of text (see README, "--json")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'syncprobe;conflicts' {
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'List only the conflicts of this status')
            [CompletionResult]::new('--resolve', '--resolve', [CompletionResultType]::ParameterName, 'Resolve the conflict with this id (see the list)')
            [CompletionResult]::new('--resolution', '--resolution', [CompletionResultType]::ParameterName, 'How to resolve it: keep the local change (queued again), keep upstream''s (marked synced), or write --merged-data (queued again)')
            [CompletionResult]::new('--merged-data', '--merged-data', [CompletionResultType]::ParameterName, 'The merged record for --resolution merge: a JSON object')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Bound of each REST call, and of --wait from the resolution to the end')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Base URL of the backend (ws, wss, http or https) [env: SYNCPROBE_URL, several separated by commas or spaces] [default: ws://localhost:3000; for `smoke` and `load`, the bundled server on a free port]. Repeatable on `connect`, `watch-sync`, `enqueue` and `smoke` (instances of one backend, tried in order) and `load` (which spreads its connections over them)')
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'Path of the sync socket; {org} is replaced by the organization id')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Base URL of the REST API (default: derived from the socket URL, ws->http, wss->https)')
            [CompletionResult]::new('-H', '-H ', [CompletionResultType]::ParameterName, 'Extra request header, `Name: value` (repeatable)')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'Extra request header, `Name: value` (repeatable)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token for the upgrade and REST calls [env: SYNCPROBE_TOKEN, used when neither --token nor --token-file is given]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the bearer token from a file (surrounding whitespace is ignored)')
            [CompletionResult]::new('--token-in', '--token-in', [CompletionResultType]::ParameterName, 'Where the token goes on the upgrade: an Authorization header, or a query parameter (--token-param) as browsers must')
            [CompletionResult]::new('--token-param', '--token-param', [CompletionResultType]::ParameterName, 'Query parameter that carries the token with --token-in query; its value is masked in every output, as `token` and `access_token` are')
            [CompletionResult]::new('--origin', '--origin', [CompletionResultType]::ParameterName, 'Origin header for the upgrade')
            [CompletionResult]::new('--subprotocol', '--subprotocol', [CompletionResultType]::ParameterName, 'WebSocket subprotocol to request (repeatable)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'Extra PEM file of CA certificates to trust (for wss:// and https://)')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Deadline for DNS, TCP, TLS and the upgrade together')
            [CompletionResult]::new('--max-message-size', '--max-message-size', [CompletionResultType]::ParameterName, 'Largest WebSocket message (and frame) accepted from the server, in bytes (1 KiB to 64 MiB); a larger one ends the run (exit 5)')
            [CompletionResult]::new('--max-body-size', '--max-body-size', [CompletionResultType]::ParameterName, 'Largest REST answer body read, in bytes (1 KiB to 256 MiB); a larger one is an error (exit 5)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Follow the item queued again over the sync socket until its terminal event')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Accept any TLS certificate (testing only)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Write NDJSON records to stdout instead of text (see README, "--json")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'syncprobe;doctor' {
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for CONNECTED, for each REST call and for the probe')
            [CompletionResult]::new('--pings', '--pings', [CompletionResultType]::ParameterName, 'Pings sent by the ping layer (0 skips it)')
            [CompletionResult]::new('--events', '--events', [CompletionResultType]::ParameterName, 'Watch what arrives for the organization this long (counts by type, gaps, duplicates, foreign organizations)')
            [CompletionResult]::new('--hold', '--hold', [CompletionResultType]::ParameterName, 'Keep the socket open this long without traffic of its own, to catch a proxy that closes idle connections')
            [CompletionResult]::new('--report', '--report', [CompletionResultType]::ParameterName, 'Write a Markdown report for a ticket (redacted) to FILE')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Base URL of the backend (ws, wss, http or https) [env: SYNCPROBE_URL, several separated by commas or spaces] [default: ws://localhost:3000; for `smoke` and `load`, the bundled server on a free port]. Repeatable on `connect`, `watch-sync`, `enqueue` and `smoke` (instances of one backend, tried in order) and `load` (which spreads its connections over them)')
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'Path of the sync socket; {org} is replaced by the organization id')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Base URL of the REST API (default: derived from the socket URL, ws->http, wss->https)')
            [CompletionResult]::new('-H', '-H ', [CompletionResultType]::ParameterName, 'Extra request header, `Name: value` (repeatable)')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'Extra request header, `Name: value` (repeatable)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token for the upgrade and REST calls [env: SYNCPROBE_TOKEN, used when neither --token nor --token-file is given]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the bearer token from a file (surrounding whitespace is ignored)')
            [CompletionResult]::new('--token-in', '--token-in', [CompletionResultType]::ParameterName, 'Where the token goes on the upgrade: an Authorization header, or a query parameter (--token-param) as browsers must')
            [CompletionResult]::new('--token-param', '--token-param', [CompletionResultType]::ParameterName, 'Query parameter that carries the token with --token-in query; its value is masked in every output, as `token` and `access_token` are')
            [CompletionResult]::new('--origin', '--origin', [CompletionResultType]::ParameterName, 'Origin header for the upgrade')
            [CompletionResult]::new('--subprotocol', '--subprotocol', [CompletionResultType]::ParameterName, 'WebSocket subprotocol to request (repeatable)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'Extra PEM file of CA certificates to trust (for wss:// and https://)')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Deadline for DNS, TCP, TLS and the upgrade together')
            [CompletionResult]::new('--max-message-size', '--max-message-size', [CompletionResultType]::ParameterName, 'Largest WebSocket message (and frame) accepted from the server, in bytes (1 KiB to 64 MiB); a larger one ends the run (exit 5)')
            [CompletionResult]::new('--max-body-size', '--max-body-size', [CompletionResultType]::ParameterName, 'Largest REST answer body read, in bytes (1 KiB to 256 MiB); a larger one is an error (exit 5)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--probe', '--probe', [CompletionResultType]::ParameterName, 'Queue one test item (POST write-sync: a real write) and follow it to its end')
            [CompletionResult]::new('--redact-ids', '--redact-ids', [CompletionResultType]::ParameterName, 'Also mask the organization id and item (pfa) ids in every output')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Accept any TLS certificate (testing only)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Write NDJSON records to stdout instead of text (see README, "--json")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'syncprobe;status' {
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Look again every INTERVAL (default 2s, at least 200ms) until Ctrl-C')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'With --watch: stop after N looks')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Bound of each REST call')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Base URL of the backend (ws, wss, http or https) [env: SYNCPROBE_URL, several separated by commas or spaces] [default: ws://localhost:3000; for `smoke` and `load`, the bundled server on a free port]. Repeatable on `connect`, `watch-sync`, `enqueue` and `smoke` (instances of one backend, tried in order) and `load` (which spreads its connections over them)')
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'Path of the sync socket; {org} is replaced by the organization id')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Base URL of the REST API (default: derived from the socket URL, ws->http, wss->https)')
            [CompletionResult]::new('-H', '-H ', [CompletionResultType]::ParameterName, 'Extra request header, `Name: value` (repeatable)')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'Extra request header, `Name: value` (repeatable)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token for the upgrade and REST calls [env: SYNCPROBE_TOKEN, used when neither --token nor --token-file is given]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the bearer token from a file (surrounding whitespace is ignored)')
            [CompletionResult]::new('--token-in', '--token-in', [CompletionResultType]::ParameterName, 'Where the token goes on the upgrade: an Authorization header, or a query parameter (--token-param) as browsers must')
            [CompletionResult]::new('--token-param', '--token-param', [CompletionResultType]::ParameterName, 'Query parameter that carries the token with --token-in query; its value is masked in every output, as `token` and `access_token` are')
            [CompletionResult]::new('--origin', '--origin', [CompletionResultType]::ParameterName, 'Origin header for the upgrade')
            [CompletionResult]::new('--subprotocol', '--subprotocol', [CompletionResultType]::ParameterName, 'WebSocket subprotocol to request (repeatable)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'Extra PEM file of CA certificates to trust (for wss:// and https://)')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Deadline for DNS, TCP, TLS and the upgrade together')
            [CompletionResult]::new('--max-message-size', '--max-message-size', [CompletionResultType]::ParameterName, 'Largest WebSocket message (and frame) accepted from the server, in bytes (1 KiB to 64 MiB); a larger one ends the run (exit 5)')
            [CompletionResult]::new('--max-body-size', '--max-body-size', [CompletionResultType]::ParameterName, 'Largest REST answer body read, in bytes (1 KiB to 256 MiB); a larger one is an error (exit 5)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Accept any TLS certificate (testing only)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Write NDJSON records to stdout instead of text (see README, "--json")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'syncprobe;load' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Sockets to open')
            [CompletionResult]::new('--connections', '--connections', [CompletionResultType]::ParameterName, 'Sockets to open')
            [CompletionResult]::new('--orgs', '--orgs', [CompletionResultType]::ParameterName, 'Organizations to spread them over, named PREFIX-1 … PREFIX-K')
            [CompletionResult]::new('--org-prefix', '--org-prefix', [CompletionResultType]::ParameterName, 'Prefix of the generated organization names')
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Use these organizations instead (repeatable or comma-separated)')
            [CompletionResult]::new('--ramp-rate', '--ramp-rate', [CompletionResultType]::ParameterName, 'Connections opened per second (0 = as fast as --max-pending allows)')
            [CompletionResult]::new('--max-pending', '--max-pending', [CompletionResultType]::ParameterName, 'Handshakes in flight at once')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'Keep the sockets open at least this long once they are all up')
            [CompletionResult]::new('--events', '--events', [CompletionResultType]::ParameterName, 'Events per organization (publish), or items per organization (queue: 3 events each)')
            [CompletionResult]::new('--rate', '--rate', [CompletionResultType]::ParameterName, 'Events per second per organization (0 = as fast as possible)')
            [CompletionResult]::new('--via', '--via', [CompletionResultType]::ParameterName, 'How events are produced: POST /api/ws/publish, or the write-sync queue')
            [CompletionResult]::new('--drain-timeout', '--drain-timeout', [CompletionResultType]::ParameterName, 'How long to wait for the last deliveries after the source is done')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Wait for each CONNECTED')
            [CompletionResult]::new('--threshold', '--threshold', [CompletionResultType]::ParameterName, 'Pass/fail rule, like ''p99<50ms'', ''connect_p95<200ms'', ''loss==0'' (repeatable)')
            [CompletionResult]::new('--report', '--report', [CompletionResultType]::ParameterName, 'Write an HTML report: run facts, figures, thresholds and charts (connections, connect time, delivery rate, latency over time, latency histogram, errors)')
            [CompletionResult]::new('--summary-file', '--summary-file', [CompletionResultType]::ParameterName, 'Write the summary (the `--json` summary record''s data) to FILE, for a later --baseline')
            [CompletionResult]::new('--baseline', '--baseline', [CompletionResultType]::ParameterName, 'Compare with an earlier run''s summary (--summary-file, or its --json output): every figure with its change, in the terminal summary and the report')
            [CompletionResult]::new('--junit', '--junit', [CompletionResultType]::ParameterName, 'Write JUnit XML: one test case per threshold and one for completeness')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'Base URL of the backend (ws, wss, http or https) [env: SYNCPROBE_URL, several separated by commas or spaces] [default: ws://localhost:3000; for `smoke` and `load`, the bundled server on a free port]. Repeatable on `connect`, `watch-sync`, `enqueue` and `smoke` (instances of one backend, tried in order) and `load` (which spreads its connections over them)')
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'Path of the sync socket; {org} is replaced by the organization id')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Base URL of the REST API (default: derived from the socket URL, ws->http, wss->https)')
            [CompletionResult]::new('-H', '-H ', [CompletionResultType]::ParameterName, 'Extra request header, `Name: value` (repeatable)')
            [CompletionResult]::new('--header', '--header', [CompletionResultType]::ParameterName, 'Extra request header, `Name: value` (repeatable)')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Bearer token for the upgrade and REST calls [env: SYNCPROBE_TOKEN, used when neither --token nor --token-file is given]')
            [CompletionResult]::new('--token-file', '--token-file', [CompletionResultType]::ParameterName, 'Read the bearer token from a file (surrounding whitespace is ignored)')
            [CompletionResult]::new('--token-in', '--token-in', [CompletionResultType]::ParameterName, 'Where the token goes on the upgrade: an Authorization header, or a query parameter (--token-param) as browsers must')
            [CompletionResult]::new('--token-param', '--token-param', [CompletionResultType]::ParameterName, 'Query parameter that carries the token with --token-in query; its value is masked in every output, as `token` and `access_token` are')
            [CompletionResult]::new('--origin', '--origin', [CompletionResultType]::ParameterName, 'Origin header for the upgrade')
            [CompletionResult]::new('--subprotocol', '--subprotocol', [CompletionResultType]::ParameterName, 'WebSocket subprotocol to request (repeatable)')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'Extra PEM file of CA certificates to trust (for wss:// and https://)')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Deadline for DNS, TCP, TLS and the upgrade together')
            [CompletionResult]::new('--max-message-size', '--max-message-size', [CompletionResultType]::ParameterName, 'Largest WebSocket message (and frame) accepted from the server, in bytes (1 KiB to 64 MiB); a larger one ends the run (exit 5)')
            [CompletionResult]::new('--max-body-size', '--max-body-size', [CompletionResultType]::ParameterName, 'Largest REST answer body read, in bytes (1 KiB to 256 MiB); a larger one is an error (exit 5)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--passive', '--passive', [CompletionResultType]::ParameterName, 'Produce no events: measure what someone else produces (needs --duration)')
            [CompletionResult]::new('--allow-loss', '--allow-loss', [CompletionResultType]::ParameterName, 'Pass although events were missing, duplicated or reordered (by default any loss fails the run, exit 1)')
            [CompletionResult]::new('--insecure', '--insecure', [CompletionResultType]::ParameterName, 'Accept any TLS certificate (testing only)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Write NDJSON records to stdout instead of text (see README, "--json")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'syncprobe;serve' {
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address to listen on (port 0 picks a free port)')
            [CompletionResult]::new('--history', '--history', [CompletionResultType]::ParameterName, 'Events retained per organization for `?since=` resume')
            [CompletionResult]::new('--lag-limit', '--lag-limit', [CompletionResultType]::ParameterName, 'Events a client may fall behind before it is closed with 1013')
            [CompletionResult]::new('--workers', '--workers', [CompletionResultType]::ParameterName, 'Concurrent write-sync attempts')
            [CompletionResult]::new('--processing-time', '--processing-time', [CompletionResultType]::ParameterName, 'Time one simulated write attempt takes')
            [CompletionResult]::new('--max-retries', '--max-retries', [CompletionResultType]::ParameterName, 'Retries of a retryable failure before SYNC_FAILED')
            [CompletionResult]::new('--retry-base', '--retry-base', [CompletionResultType]::ParameterName, 'Backoff before the first retry; doubles for each further retry')
            [CompletionResult]::new('--ping-interval', '--ping-interval', [CompletionResultType]::ParameterName, 'Interval of server pings; a client silent for two intervals is dropped (0 = off)')
            [CompletionResult]::new('--write-timeout', '--write-timeout', [CompletionResultType]::ParameterName, 'A write to a client blocked this long drops the client')
            [CompletionResult]::new('--shutdown-grace', '--shutdown-grace', [CompletionResultType]::ParameterName, 'Longest the whole shutdown may take; connections left then are dropped (exit 0)')
            [CompletionResult]::new('--history-bytes', '--history-bytes', [CompletionResultType]::ParameterName, 'Bytes of history retained per organization (the oldest events go first)')
            [CompletionResult]::new('--history-total-bytes', '--history-total-bytes', [CompletionResultType]::ParameterName, 'Bytes of history retained across organizations (the oldest events go first)')
            [CompletionResult]::new('--max-queued-bytes', '--max-queued-bytes', [CompletionResultType]::ParameterName, 'Bytes a client may fall behind before it is closed with 1013')
            [CompletionResult]::new('--slow-grace', '--slow-grace', [CompletionResultType]::ParameterName, 'How long a large burst waits for a client that is behind before overtaking it')
            [CompletionResult]::new('--max-event-size', '--max-event-size', [CompletionResultType]::ParameterName, 'Largest publish body (one event), in bytes (larger: HTTP 413)')
            [CompletionResult]::new('--max-paced-publishes', '--max-paced-publishes', [CompletionResultType]::ParameterName, 'Paced publishes (ratePerSec > 0) running at once (more: HTTP 429)')
            [CompletionResult]::new('--max-queued-items', '--max-queued-items', [CompletionResultType]::ParameterName, 'Write-sync items waiting or in progress across organizations; with --redis per organization across instances (more: HTTP 503)')
            [CompletionResult]::new('--handshake-timeout', '--handshake-timeout', [CompletionResultType]::ParameterName, 'Time a new sync socket has to answer the server''s first ping (more: close 4408; 0 = off)')
            [CompletionResult]::new('--header-timeout', '--header-timeout', [CompletionResultType]::ParameterName, 'Time a client has to send a request''s head, from connecting or from the previous response (so also the keep-alive idle timeout)')
            [CompletionResult]::new('--max-header-bytes', '--max-header-bytes', [CompletionResultType]::ParameterName, 'Largest request head, in bytes (larger: HTTP 431)')
            [CompletionResult]::new('--max-pending-connections', '--max-pending-connections', [CompletionResultType]::ParameterName, 'Connections that have not sent a complete request head yet, in total (more: closed at once)')
            [CompletionResult]::new('--max-pending-per-ip', '--max-pending-per-ip', [CompletionResultType]::ParameterName, 'Connections that have not sent a complete request head yet, per client IP (more: closed at once)')
            [CompletionResult]::new('--metrics-listen', '--metrics-listen', [CompletionResultType]::ParameterName, 'Serve /metrics on this address instead of the main port (e.g. 127.0.0.1:9090)')
            [CompletionResult]::new('--metrics-orgs', '--metrics-orgs', [CompletionResultType]::ParameterName, 'Organizations with a /metrics label of their own: the busiest by open sockets on the gauge, the first seen on counters; the rest are summed under org="_other"')
            [CompletionResult]::new('--max-message-size', '--max-message-size', [CompletionResultType]::ParameterName, 'Largest client message accepted on sync sockets, in bytes (larger: close 1009)')
            [CompletionResult]::new('--jwt-secret', '--jwt-secret', [CompletionResultType]::ParameterName, 'Require HS256 tokens signed with this secret (on every upgrade and the REST API)')
            [CompletionResult]::new('--jwt-secret-file', '--jwt-secret-file', [CompletionResultType]::ParameterName, 'Read the HS256 secret from a file (surrounding whitespace is ignored)')
            [CompletionResult]::new('--jwt-public-key', '--jwt-public-key', [CompletionResultType]::ParameterName, 'Require tokens signed by this public key (PEM): RSA for RS256, EC P-256 for ES256')
            [CompletionResult]::new('--jwt-issuer', '--jwt-issuer', [CompletionResultType]::ParameterName, 'Tokens must carry this issuer (iss)')
            [CompletionResult]::new('--jwt-audience', '--jwt-audience', [CompletionResultType]::ParameterName, 'Tokens must carry this audience (aud); without it, aud is not checked')
            [CompletionResult]::new('--jwt-leeway', '--jwt-leeway', [CompletionResultType]::ParameterName, 'Clock tolerance for exp and nbf (at most 1h)')
            [CompletionResult]::new('--allowed-origin', '--allowed-origin', [CompletionResultType]::ParameterName, 'Origin allowed to open sockets and call the API, like https://app.example.com or https://*.example.com (repeatable or comma-separated; default: any)')
            [CompletionResult]::new('--org-id-syntax', '--org-id-syntax', [CompletionResultType]::ParameterName, 'How organization ids are checked')
            [CompletionResult]::new('--org-allow-file', '--org-allow-file', [CompletionResultType]::ParameterName, 'Serve only the organizations listed in this file (one per line, # comments); SIGHUP or POST /api/ws/admin/reload-orgs re-reads it')
            [CompletionResult]::new('--rate-limit', '--rate-limit', [CompletionResultType]::ParameterName, 'Client frames per second per connection (more: close 4429; 0 = off)')
            [CompletionResult]::new('--rate-burst', '--rate-burst', [CompletionResultType]::ParameterName, 'Client frames a connection may send at once before --rate-limit applies')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'Close a sync socket silent (no frame, no pong) this long with 4408 (0 = never)')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Open sync sockets in total (0 = unlimited)')
            [CompletionResult]::new('--max-connections-per-org', '--max-connections-per-org', [CompletionResultType]::ParameterName, 'Open sync sockets per organization (0 = unlimited)')
            [CompletionResult]::new('--cap-response', '--cap-response', [CompletionResultType]::ParameterName, 'Over a cap: refuse the upgrade with HTTP 503, or accept and close with 4503')
            [CompletionResult]::new('--ip-upgrade-rate', '--ip-upgrade-rate', [CompletionResultType]::ParameterName, 'Upgrade attempts per second per client IP (more: HTTP 429; 0 = off)')
            [CompletionResult]::new('--ip-upgrade-burst', '--ip-upgrade-burst', [CompletionResultType]::ParameterName, 'Upgrade attempts a client IP may make at once before --ip-upgrade-rate applies')
            [CompletionResult]::new('--redis', '--redis', [CompletionResultType]::ParameterName, 'Share events, their history and the write-sync queue with other instances through this Redis (redis://[:PASSWORD@]HOST:PORT[/DB], or rediss:// for TLS)')
            [CompletionResult]::new('--claim-after', '--claim-after', [CompletionResultType]::ParameterName, 'With --redis: a write-sync item another instance took and has not touched for this long (it died or lost Redis) is claimed and finished by an idle worker here')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Serve https:// and wss:// with this certificate chain (PEM; needs --tls-key)')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'The private key of --tls-cert (PEM)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Write NDJSON records to stdout instead of text (see README, "--json")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'syncprobe;replay' {
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address to listen on (port 0 picks a free port)')
            [CompletionResult]::new('--speed', '--speed', [CompletionResultType]::ParameterName, 'Playback speed: 2 is twice as fast, 0.5 half as fast; 0 or max sends without waiting')
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Serve the recording''s one organization as ORG (its organizationId rewritten)')
            [CompletionResult]::new('--max-message-size', '--max-message-size', [CompletionResultType]::ParameterName, 'Largest recorded frame accepted, in bytes (a larger one makes the file an error)')
            [CompletionResult]::new('--ping-interval', '--ping-interval', [CompletionResultType]::ParameterName, 'Interval of server pings; a client silent for a whole interval is dropped (0 = off)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--loop', '--loop', [CompletionResultType]::ParameterName, 'Start over at the end of the recording (seq keeps counting)')
            [CompletionResult]::new('--step', '--step', [CompletionResultType]::ParameterName, 'Send each frame only when Enter is pressed on stdin (every waiting socket gets its next frame); when stdin ends, the rest plays at --speed')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Write NDJSON records to stdout instead of text (see README, "--json")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'syncprobe;proxy' {
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address to listen on, for HTTP and WebSocket (port 0 picks a free port)')
            [CompletionResult]::new('--upstream', '--upstream', [CompletionResultType]::ParameterName, 'The backend''s base URL (ws, wss, http or https; a path is a prefix)')
            [CompletionResult]::new('--latency', '--latency', [CompletionResultType]::ParameterName, 'Delay every chunk by DURATION (from its arrival)')
            [CompletionResult]::new('--jitter', '--jitter', [CompletionResultType]::ParameterName, 'Vary every --latency by up to this much either way')
            [CompletionResult]::new('--bandwidth', '--bandwidth', [CompletionResultType]::ParameterName, 'Limit the rate: 500kbit, 2mbit, 64kB (per second)')
            [CompletionResult]::new('--slicer', '--slicer', [CompletionResultType]::ParameterName, 'Split writes into pieces of about BYTES (default 64), 1 ms apart')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Stop forwarding (data is dropped), then close after DURATION (none: never)')
            [CompletionResult]::new('--reset-peer', '--reset-peer', [CompletionResultType]::ParameterName, 'Reset the TCP connection (RST) when data flows, after DURATION (none: at once)')
            [CompletionResult]::new('--limit-data', '--limit-data', [CompletionResultType]::ParameterName, 'Close the connection once BYTES went through')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'A browser''s network preset (Chrome DevTools'' figures, see below)')
            [CompletionResult]::new('--cut-every', '--cut-every', [CompletionResultType]::ParameterName, 'Drop every connection this often (and refuse new ones for --cut-for)')
            [CompletionResult]::new('--cut-for', '--cut-for', [CompletionResultType]::ParameterName, 'How long each cut lasts')
            [CompletionResult]::new('--drop', '--drop', [CompletionResultType]::ParameterName, 'Drop the upstream''s frames of TYPE (with probability P, default 1)')
            [CompletionResult]::new('--duplicate', '--duplicate', [CompletionResultType]::ParameterName, 'Send the upstream''s frames of TYPE twice')
            [CompletionResult]::new('--delay', '--delay', [CompletionResultType]::ParameterName, 'Hold frames of TYPE for DURATION (later frames wait behind them)')
            [CompletionResult]::new('--reorder', '--reorder', [CompletionResultType]::ParameterName, 'Swap a frame with the next one, with probability P (CONNECTED stays first)')
            [CompletionResult]::new('--corrupt', '--corrupt', [CompletionResultType]::ParameterName, 'Make frames of TYPE invalid JSON')
            [CompletionResult]::new('--hold-connected', '--hold-connected', [CompletionResultType]::ParameterName, 'Hold CONNECTED for DURATION')
            [CompletionResult]::new('--close-after', '--close-after', [CompletionResultType]::ParameterName, 'Close the client''s socket with CODE after N frames from the upstream')
            [CompletionResult]::new('--refuse-upgrade', '--refuse-upgrade', [CompletionResultType]::ParameterName, 'Refuse WebSocket upgrades with STATUS (401, 429, 503 …), with probability P')
            [CompletionResult]::new('--where', '--where', [CompletionResultType]::ParameterName, 'Message faults match only frames whose field equals the value: FIELD=VALUE, dotted paths such as details.error (repeatable; all must hold)')
            [CompletionResult]::new('--seed', '--seed', [CompletionResultType]::ParameterName, 'Seed of every random decision (default: a random seed, printed)')
            [CompletionResult]::new('--log', '--log', [CompletionResultType]::ParameterName, 'Write every decision to FILE as NDJSON (time, connection, fault, frame, seq)')
            [CompletionResult]::new('--control', '--control', [CompletionResultType]::ParameterName, 'Serve the control API on ADDR (port 0 picks a free port)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--swallow-pings', '--swallow-pings', [CompletionResultType]::ParameterName, 'Leave the client''s pings unanswered and keep the upstream''s from it')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Write NDJSON records to stdout instead of text (see README, "--json")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'syncprobe;token' {
            [CompletionResult]::new('--secret', '--secret', [CompletionResultType]::ParameterName, 'The HS256 secret (the one `serve --jwt-secret` was given)')
            [CompletionResult]::new('--secret-file', '--secret-file', [CompletionResultType]::ParameterName, 'Read the secret from a file (surrounding whitespace is ignored)')
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Organization the token allows (repeatable; `*` allows every organization)')
            [CompletionResult]::new('--claims', '--claims', [CompletionResultType]::ParameterName, 'The shape of the claims (see below) [default: simple]')
            [CompletionResult]::new('--permission', '--permission', [CompletionResultType]::ParameterName, 'Permission granted in every organization, with --claims pfa (repeatable; perm_Read and perm_Sync when not given)')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'userId and username, with --claims pfa or ids [default: syncprobe]')
            [CompletionResult]::new('--service-status', '--service-status', [CompletionResultType]::ParameterName, 'serviceStatus, with --claims pfa (serve refuses anything but active) [default: active]')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'Lifetime: exp is now plus this [default: 1h]')
            [CompletionResult]::new('--issuer', '--issuer', [CompletionResultType]::ParameterName, 'Issuer claim (iss)')
            [CompletionResult]::new('--audience', '--audience', [CompletionResultType]::ParameterName, 'Audience claim (aud)')
            [CompletionResult]::new('--subject', '--subject', [CompletionResultType]::ParameterName, 'Subject claim (sub)')
            [CompletionResult]::new('--not-before', '--not-before', [CompletionResultType]::ParameterName, 'Not valid before now plus this (nbf)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Write NDJSON records to stdout instead of text (see README, "--json")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Decode a token without verifying it and say whether it is usable')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'syncprobe;token;inspect' {
            [CompletionResult]::new('--org', '--org', [CompletionResultType]::ParameterName, 'Say whether the token allows this organization')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Write NDJSON records to stdout instead of text (see README, "--json")')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors and the final result')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more detail (repeat for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'syncprobe;token;help' {
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Decode a token without verifying it and say whether it is usable')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'syncprobe;token;help;inspect' {
            break
        }
        'syncprobe;token;help;help' {
            break
        }
        'syncprobe;help' {
            [CompletionResult]::new('connect', 'connect', [CompletionResultType]::ParameterValue, 'Open a sync socket, check CONNECTED, and close')
            [CompletionResult]::new('watch-sync', 'watch-sync', [CompletionResultType]::ParameterValue, 'Stream an organization''s sync events and check them against expectations')
            [CompletionResult]::new('enqueue', 'enqueue', [CompletionResultType]::ParameterValue, 'Queue writes through POST /api/pems/write-sync, optionally following them to the end')
            [CompletionResult]::new('smoke', 'smoke', [CompletionResultType]::ParameterValue, 'Run the whole verification checklist against a backend (or the bundled server)')
            [CompletionResult]::new('conflicts', 'conflicts', [CompletionResultType]::ParameterValue, 'List an organization''s sync conflicts, or resolve one (and follow its item again)')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Diagnose one organization''s socket layer by layer, with a report to paste into a ticket')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show an organization''s queue health, backlog and sockets (--watch to refresh)')
            [CompletionResult]::new('load', 'load', [CompletionResultType]::ParameterValue, 'Open many sync sockets and measure connect time, fan-out latency and completeness')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the bundled sync-socket server (the protocol''s reference implementation)')
            [CompletionResult]::new('replay', 'replay', [CompletionResultType]::ParameterValue, 'Serve a recorded session (watch-sync --record, or a browser HAR file) as a sync socket server')
            [CompletionResult]::new('proxy', 'proxy', [CompletionResultType]::ParameterValue, 'Put a fault-injecting proxy (network and message faults) in front of a backend')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Mint an HS256 test token for a secured `serve` (development and CI only), or inspect one')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'syncprobe;help;connect' {
            break
        }
        'syncprobe;help;watch-sync' {
            break
        }
        'syncprobe;help;enqueue' {
            break
        }
        'syncprobe;help;smoke' {
            break
        }
        'syncprobe;help;conflicts' {
            break
        }
        'syncprobe;help;doctor' {
            break
        }
        'syncprobe;help;status' {
            break
        }
        'syncprobe;help;load' {
            break
        }
        'syncprobe;help;serve' {
            break
        }
        'syncprobe;help;replay' {
            break
        }
        'syncprobe;help;proxy' {
            break
        }
        'syncprobe;help;token' {
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Decode a token without verifying it and say whether it is usable')
            break
        }
        'syncprobe;help;token;inspect' {
            break
        }
        'syncprobe;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
