# Host names of the ssh configuration and fish's own, after the last comma
# of an inline list.
function __fish_gmr_hosts
    set -l token (commandline -ct)
    set -l prefix ''
    if string match -q -- '*,*' $token
        set prefix (string replace -r '[^,]*$' '' -- $token)
    end
    for name in (awk 'tolower($1) == "host" { for (i = 2; i <= NF; i++) if ($i !~ /[*?!]/) print $i }' ~/.ssh/config 2>/dev/null) (__fish_print_hostnames)
        echo $prefix$name
    end
end

# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_gmr_global_optspecs
    string join \n h/help V/version
end

function __fish_gmr_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_gmr_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_gmr_using_subcommand
    set -l cmd (__fish_gmr_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c gmr -n "__fish_gmr_needs_command" -s h -l help -d 'Print help'
complete -c gmr -n "__fish_gmr_needs_command" -s V -l version -d 'Print version'
complete -c gmr -n "__fish_gmr_needs_command" -f -a "run" -d 'Run a whole job: split, map, shuffle and reduce'
complete -c gmr -n "__fish_gmr_needs_command" -f -a "split" -d 'Cut inputs into splits on record boundaries; print one JSON line per split'
complete -c gmr -n "__fish_gmr_needs_command" -f -a "map" -d 'Run the mapper on each split (JSON lines on stdin); partition and sort its output'
complete -c gmr -n "__fish_gmr_needs_command" -f -a "shuffle" -d 'Merge the sorted runs of each partition (map JSON lines on stdin)'
complete -c gmr -n "__fish_gmr_needs_command" -f -a "reduce" -d 'Run the reducer on each merged partition and commit the part files'
complete -c gmr -n "__fish_gmr_needs_command" -f -a "status" -d 'Show a job\'s status: phase, tasks, hosts, throughput, counters, failures'
complete -c gmr -n "__fish_gmr_needs_command" -f -a "report" -d 'Write a job\'s HTML report: timeline of attempts, partition sizes, task durations, counters, failures'
complete -c gmr -n "__fish_gmr_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gmr -n "__fish_gmr_using_subcommand run" -s m -l mapper -d 'The mapper: a command (plain words start the program directly, any other command line runs under `sh -c`, so a pipeline is fine) or @identity' -r -f -a "@identity (__fish_complete_command)"
complete -c gmr -n "__fish_gmr_using_subcommand run" -s c -l combiner -d 'A combiner run on each sorted map-side run: a command or a built-in (@count, @sum, @min, @max); it must be safe to apply zero or more times' -r -f -a "@count @sum @min @max (__fish_complete_command)"
complete -c gmr -n "__fish_gmr_using_subcommand run" -s R -l reducers -d 'Number of reduce partitions (default: the number of jobs, at most 1048576); 0 makes a map-only job whose mapper output is the output, order kept' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -s r -l reducer -d 'The reducer: a command, as for -m, or a built-in (@count, @sum, @min, @max, @identity)' -r -f -a "@count @sum @min @max @identity (__fish_complete_command)"
complete -c gmr -n "__fish_gmr_using_subcommand run" -l split-size -d 'Bytes per split, with K, M or G suffix (default: input size / (2 x jobs), between 1M and 64M); past 64 splits, files under half a split share map tasks (a mapper each, unless --one-mapper-per-task)' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -s o -l output -d 'Write part-00000, part-00001, ... and _SUCCESS into DIR (default: the output on stdout, in partition order)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand run" -l compress -d 'Compress each part: gz (part-NNNNN.gz) or zst (part-NNNNN.zst); gmr reads such parts back as input' -r -f -a "gz\t''
zst\t''"
complete -c gmr -n "__fish_gmr_using_subcommand run" -l max-output-keys -d 'With --output-by-key, the most keys a reduce task (or map-only task) may write; one more fails the job, before any of its files lands in DIR' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -l separator -d 'The byte between key and value: one character (e.g. , or \' \'), \\t, \\0 or \\xHH (e.g. \\x1f)' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -l key-fields -d 'How many leading fields form the key' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -l partition-fields -d 'Choose the partition by the first N fields of the key only (1 <= N <= --key-fields): records whose first N fields are equal go to the same reducer (Hadoop\'s KeyFieldBasedPartitioner -k1,N)' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -l sort-key -d 'Order the records of each partition by this key, in sort(1)\'s -k syntax (2,2nr, 1,1, 3n; options b d f g i n r), fields split at --separator; repeat it for more keys. Ties go by the whole line, so one partition is what LC_ALL=C sort -t SEP -k KEYDEF gives. Reducers still group by --key-fields: consecutive equal keys' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -l sort-buffer -d 'Mapper output a map task sorts in memory before spilling a sorted run to disk, with K, M or G suffix (shared by the running tasks)' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -l max-record -d 'The longest record (line) of mapper output a task takes, with K, M or G suffix: gmr holds a record whole in memory, so this bounds a task\'s memory; a longer record stops the job, naming its input' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -l status-interval -d 'When stderr is not a terminal (nohup, cron, CI, a Slurm job\'s log), print a plain status line every DURATION: phase, tasks done/total, percentage of bytes, failed attempts, ETA. 0 never' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -s j -l jobs -d 'Tasks to run at once on this machine (default: the number of cores); with --hosts, the slots of a `:` entry that gives no N/' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -l retries -d 'Retries of a failed task before the job fails (an attempt lost with its host, e.g. a dropped connection, is rerun elsewhere and not counted)' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -l env -d 'Set a variable for every command of the job, on every host: NAME=VALUE, or NAME for its value here (repeatable). The locale (LANG, LANGUAGE, LC_*) and TZ are passed on by default' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -l ok-exit -d 'Exit statuses of the job\'s commands that mean success, comma-separated (e.g. 0,1 for grep, which exits 1 when nothing matched)' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -l task-timeout -d 'Kill and retry an attempt whose command shows no sign of life (takes no input, prints nothing, writes nothing to stderr) for DURATION: 90s, 10m, 1h; 0 never' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -l task-memory -d 'The memory a command (mapper, combiner, reducer) may use, with K, M or G suffix: a memory cgroup of its own where gmr can make one (all of a pipeline; past it the kernel kills it), else RLIMIT_DATA on each process (allocations fail); with --slurm also srun\'s and sbatch\'s --mem. An attempt that fails so is reported as over --task-memory and retried' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -l memfree -d 'Start no attempt on a host while its available memory (MemAvailable) is below SIZE, with K, M or G suffix, as GNU parallel\'s --memfree' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -l joblog -d 'Append one JSON line per task attempt to FILE (task, attempt, host, start, duration, status, records and bytes, error)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand run" -l hosts -d 'Run tasks on these hosts over SSH. HOSTS is a file with one `[N/][user@]host[:port]` per line (N/: N tasks at once, default the host\'s cores; `:` is this machine; `#` comments), or, when no such file exists, the same entries inline, comma-separated. Needs --workdir on a filesystem every host shares (e.g. NFS)' -r -F -a "(__fish_gmr_hosts)"
complete -c gmr -n "__fish_gmr_using_subcommand run" -l identity -d 'The private key for SSH logins, tried before the keys of ssh-agent and those of the ssh configuration (default: the agent\'s keys, then the configuration\'s IdentityFile, else ~/.ssh/id_rsa, id_ecdsa, id_ecdsa_sk, id_ed25519, id_ed25519_sk, as ssh tries them)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand run" -l known-hosts -d 'The user\'s known_hosts file, read before --global-known-hosts, where --accept-new-host-keys adds keys; an unknown, changed or revoked key refuses the host (default: the configuration\'s UserKnownHostsFile, else ~/.ssh/known_hosts, then ~/.ssh/known_hosts2)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand run" -l global-known-hosts -d 'Known_hosts files read after the user\'s (default: the configuration\'s GlobalKnownHostsFile, else /etc/ssh/ssh_known_hosts and /etc/ssh/ssh_known_hosts2); repeat for several' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand run" -l remote-gmr -d 'The path of gmr on the hosts or Slurm nodes (default: a copy of this gmr that gmr makes in the work directory, WORKDIR/bin/gmr-DIGEST, which must then be writable by you alone)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand run" -l slurm-args -d 'Options every srun or sbatch gets, split at blanks: partition, account, time limit, QOS (e.g. "--partition=short --time=10")' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -l ssh-timeout -d 'Seconds to wait when connecting to a host, and the longest a host may stay silent (not even answering keepalives) before it counts as hung; a quiet task on a live host is never cut short (at least 5; default: the configuration\'s ConnectTimeout and ServerAliveInterval x ServerAliveCountMax, else 30)' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -l ssh-config -d 'The ssh configuration to read instead of ~/.ssh/config and /etc/ssh/ssh_config, as `ssh -F FILE` (`none`: none). Host names of --hosts are resolved as ssh resolves them: aliases, HostName, Port, User, IdentityFile, ProxyJump, ProxyCommand, known_hosts files and StrictHostKeyChecking, HostKeyAlias, HashKnownHosts, timeouts' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand run" -l workdir -d 'The work directory (default: a new one in $TMPDIR, removed after a successful run)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand run" -l max-failed-tasks -d 'Map tasks that may still fail after their retries without failing the job: N, or N% of the map tasks. Their input is skipped, and named in the summary, the job log, gmr status, the report and OUTPUT/_SKIPPED; one more fails the job [default: 0]' -r
complete -c gmr -n "__fish_gmr_using_subcommand run" -l keep-intermediate -d 'Keep each step\'s output but the last, in DIR/step-N (default: in the work directory, removed with it)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand run" -l whole-files -d 'Give each input file, whole, to a mapper of its own, whatever its size (--split-size does not cut it; GMR_INPUT_FILE names it; a compressed one is decompressed, an empty one gets a mapper too): for files that are one record each, such as documents, or that a mapper must see whole'
complete -c gmr -n "__fish_gmr_using_subcommand run" -s z -l null -d 'Records end in NUL rather than newline, in and out of every stage, as with sort -z and xargs -0 (find -print0 lists, records that hold newlines): inputs are cut at NULs, commands read and write NUL-ended records, and so does the output'
complete -c gmr -n "__fish_gmr_using_subcommand run" -l force -d 'Replace an old output in DIR: its part files and _SUCCESS (a DIR holding anything else is refused)'
complete -c gmr -n "__fish_gmr_using_subcommand run" -l output-by-key -d 'File each output line by its key (its text before the separator, as --key-fields makes it): DIR/KEY/part-NNNNN, _SUCCESS last; needs -o. Keys become safe names: / and other bytes as %HH, the empty key as _EMPTY (FILES in gmr-run(1))'
complete -c gmr -n "__fish_gmr_using_subcommand run" -l total-order -d 'Partition by ranges of the order instead of by hash, so that the parts are in order one after the other (cat out/part-* is sorted): cut points are picked from a sample of the mapper\'s output'
complete -c gmr -n "__fish_gmr_using_subcommand run" -l one-mapper-per-task -d 'Feed the small files that share a map task to one mapper, one after the other, rather than start a mapper for each: far faster over thousands of small files. Mappers then get no GMR_INPUT_FILE (nor map_input_file): leave this off for mappers that read it'
complete -c gmr -n "__fish_gmr_using_subcommand run" -s q -l quiet -d 'No progress display, status lines or summary on stderr'
complete -c gmr -n "__fish_gmr_using_subcommand run" -l accept-new-host-keys -d 'Accept the key of a host that no line of the known_hosts files covers, and add it to the user\'s (trust on first use; hashed with HashKnownHosts), as StrictHostKeyChecking=accept-new in the ssh configuration does; a changed or revoked key is still refused'
complete -c gmr -n "__fish_gmr_using_subcommand run" -l slurm -d 'Run the tasks on Slurm: inside an allocation (salloc, an sbatch script) as job steps (srun) on its nodes, per node as many at once as it has allocated CPUs (or -j); outside one (a login node) as job arrays (sbatch), -j at once (default: the cluster\'s CPUs)'
complete -c gmr -n "__fish_gmr_using_subcommand run" -l resume -d 'Continue the failed or interrupted job in --workdir: tasks that committed are reused, only the rest run (the job must be the same: commands, inputs, R, key, output). In a job of several steps, a step whose flags changed runs again, and so do the steps after it'
complete -c gmr -n "__fish_gmr_using_subcommand run" -l then -d 'Then another step, which reads this one\'s output: the flags after --then, up to the next --then, are the step\'s (-m, -c, -r, -R, --separator, --key-fields, --partition-fields, --sort-key, --total-order, --ok-exit). All other flags are the job\'s: give them before the first --then. The inputs, which the first step reads, go there too or after the last step'
complete -c gmr -n "__fish_gmr_using_subcommand run" -s h -l help -d 'Print help'
complete -c gmr -n "__fish_gmr_using_subcommand split" -l split-size -d 'Bytes per split, with K, M or G suffix (default: input size / (2 x jobs), between 1M and 64M); past 64 splits, files under half a split share map tasks (a mapper each, unless --one-mapper-per-task)' -r
complete -c gmr -n "__fish_gmr_using_subcommand split" -l workdir -d 'Work directory to spool stdin into (default: a new one in $TMPDIR, when stdin is read; `gmr reduce` removes it after success)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand split" -s j -l jobs -d 'The number of jobs the default split size plans for (default: the number of cores)' -r
complete -c gmr -n "__fish_gmr_using_subcommand split" -l whole-files -d 'Give each input file, whole, to a mapper of its own, whatever its size (--split-size does not cut it; GMR_INPUT_FILE names it; a compressed one is decompressed, an empty one gets a mapper too): for files that are one record each, such as documents, or that a mapper must see whole'
complete -c gmr -n "__fish_gmr_using_subcommand split" -s z -l null -d 'Records end in NUL rather than newline, in and out of every stage, as with sort -z and xargs -0 (find -print0 lists, records that hold newlines): inputs are cut at NULs, commands read and write NUL-ended records, and so does the output'
complete -c gmr -n "__fish_gmr_using_subcommand split" -s h -l help -d 'Print help'
complete -c gmr -n "__fish_gmr_using_subcommand map" -s m -l mapper -d 'The mapper: a command (plain words start the program directly, any other command line runs under `sh -c`, so a pipeline is fine) or @identity' -r -f -a "@identity (__fish_complete_command)"
complete -c gmr -n "__fish_gmr_using_subcommand map" -s c -l combiner -d 'A combiner run on each sorted map-side run: a command or a built-in (@count, @sum, @min, @max); it must be safe to apply zero or more times' -r -f -a "@count @sum @min @max (__fish_complete_command)"
complete -c gmr -n "__fish_gmr_using_subcommand map" -s R -l reducers -d 'Number of reduce partitions (default: the number of jobs, at most 1048576); 0 makes a map-only job whose mapper output is the output, order kept' -r
complete -c gmr -n "__fish_gmr_using_subcommand map" -l separator -d 'The byte between key and value: one character (e.g. , or \' \'), \\t, \\0 or \\xHH (e.g. \\x1f)' -r
complete -c gmr -n "__fish_gmr_using_subcommand map" -l key-fields -d 'How many leading fields form the key' -r
complete -c gmr -n "__fish_gmr_using_subcommand map" -l partition-fields -d 'Choose the partition by the first N fields of the key only (1 <= N <= --key-fields): records whose first N fields are equal go to the same reducer (Hadoop\'s KeyFieldBasedPartitioner -k1,N)' -r
complete -c gmr -n "__fish_gmr_using_subcommand map" -l sort-key -d 'Order the records of each partition by this key, in sort(1)\'s -k syntax (2,2nr, 1,1, 3n; options b d f g i n r), fields split at --separator; repeat it for more keys. Ties go by the whole line, so one partition is what LC_ALL=C sort -t SEP -k KEYDEF gives. Reducers still group by --key-fields: consecutive equal keys' -r
complete -c gmr -n "__fish_gmr_using_subcommand map" -l sort-buffer -d 'Mapper output a map task sorts in memory before spilling a sorted run to disk, with K, M or G suffix (shared by the running tasks)' -r
complete -c gmr -n "__fish_gmr_using_subcommand map" -l max-record -d 'The longest record (line) of mapper output a task takes, with K, M or G suffix: gmr holds a record whole in memory, so this bounds a task\'s memory; a longer record stops the job, naming its input' -r
complete -c gmr -n "__fish_gmr_using_subcommand map" -l status-interval -d 'When stderr is not a terminal (nohup, cron, CI, a Slurm job\'s log), print a plain status line every DURATION: phase, tasks done/total, percentage of bytes, failed attempts, ETA. 0 never' -r
complete -c gmr -n "__fish_gmr_using_subcommand map" -s j -l jobs -d 'Tasks to run at once on this machine (default: the number of cores); with --hosts, the slots of a `:` entry that gives no N/' -r
complete -c gmr -n "__fish_gmr_using_subcommand map" -l retries -d 'Retries of a failed task before the job fails (an attempt lost with its host, e.g. a dropped connection, is rerun elsewhere and not counted)' -r
complete -c gmr -n "__fish_gmr_using_subcommand map" -l env -d 'Set a variable for every command of the job, on every host: NAME=VALUE, or NAME for its value here (repeatable). The locale (LANG, LANGUAGE, LC_*) and TZ are passed on by default' -r
complete -c gmr -n "__fish_gmr_using_subcommand map" -l ok-exit -d 'Exit statuses of the job\'s commands that mean success, comma-separated (e.g. 0,1 for grep, which exits 1 when nothing matched)' -r
complete -c gmr -n "__fish_gmr_using_subcommand map" -l task-timeout -d 'Kill and retry an attempt whose command shows no sign of life (takes no input, prints nothing, writes nothing to stderr) for DURATION: 90s, 10m, 1h; 0 never' -r
complete -c gmr -n "__fish_gmr_using_subcommand map" -l task-memory -d 'The memory a command (mapper, combiner, reducer) may use, with K, M or G suffix: a memory cgroup of its own where gmr can make one (all of a pipeline; past it the kernel kills it), else RLIMIT_DATA on each process (allocations fail); with --slurm also srun\'s and sbatch\'s --mem. An attempt that fails so is reported as over --task-memory and retried' -r
complete -c gmr -n "__fish_gmr_using_subcommand map" -l memfree -d 'Start no attempt on a host while its available memory (MemAvailable) is below SIZE, with K, M or G suffix, as GNU parallel\'s --memfree' -r
complete -c gmr -n "__fish_gmr_using_subcommand map" -l joblog -d 'Append one JSON line per task attempt to FILE (task, attempt, host, start, duration, status, records and bytes, error)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand map" -l hosts -d 'Run tasks on these hosts over SSH. HOSTS is a file with one `[N/][user@]host[:port]` per line (N/: N tasks at once, default the host\'s cores; `:` is this machine; `#` comments), or, when no such file exists, the same entries inline, comma-separated. Needs --workdir on a filesystem every host shares (e.g. NFS)' -r -F -a "(__fish_gmr_hosts)"
complete -c gmr -n "__fish_gmr_using_subcommand map" -l identity -d 'The private key for SSH logins, tried before the keys of ssh-agent and those of the ssh configuration (default: the agent\'s keys, then the configuration\'s IdentityFile, else ~/.ssh/id_rsa, id_ecdsa, id_ecdsa_sk, id_ed25519, id_ed25519_sk, as ssh tries them)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand map" -l known-hosts -d 'The user\'s known_hosts file, read before --global-known-hosts, where --accept-new-host-keys adds keys; an unknown, changed or revoked key refuses the host (default: the configuration\'s UserKnownHostsFile, else ~/.ssh/known_hosts, then ~/.ssh/known_hosts2)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand map" -l global-known-hosts -d 'Known_hosts files read after the user\'s (default: the configuration\'s GlobalKnownHostsFile, else /etc/ssh/ssh_known_hosts and /etc/ssh/ssh_known_hosts2); repeat for several' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand map" -l remote-gmr -d 'The path of gmr on the hosts or Slurm nodes (default: a copy of this gmr that gmr makes in the work directory, WORKDIR/bin/gmr-DIGEST, which must then be writable by you alone)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand map" -l slurm-args -d 'Options every srun or sbatch gets, split at blanks: partition, account, time limit, QOS (e.g. "--partition=short --time=10")' -r
complete -c gmr -n "__fish_gmr_using_subcommand map" -l ssh-timeout -d 'Seconds to wait when connecting to a host, and the longest a host may stay silent (not even answering keepalives) before it counts as hung; a quiet task on a live host is never cut short (at least 5; default: the configuration\'s ConnectTimeout and ServerAliveInterval x ServerAliveCountMax, else 30)' -r
complete -c gmr -n "__fish_gmr_using_subcommand map" -l ssh-config -d 'The ssh configuration to read instead of ~/.ssh/config and /etc/ssh/ssh_config, as `ssh -F FILE` (`none`: none). Host names of --hosts are resolved as ssh resolves them: aliases, HostName, Port, User, IdentityFile, ProxyJump, ProxyCommand, known_hosts files and StrictHostKeyChecking, HostKeyAlias, HashKnownHosts, timeouts' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand map" -l workdir -d 'The work directory (default: the one in the split lines, else a new one in $TMPDIR)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand map" -l total-order -d 'Partition by ranges of the order instead of by hash, so that the parts are in order one after the other (cat out/part-* is sorted): cut points are picked from a sample of the mapper\'s output'
complete -c gmr -n "__fish_gmr_using_subcommand map" -l one-mapper-per-task -d 'Feed the small files that share a map task to one mapper, one after the other, rather than start a mapper for each: far faster over thousands of small files. Mappers then get no GMR_INPUT_FILE (nor map_input_file): leave this off for mappers that read it'
complete -c gmr -n "__fish_gmr_using_subcommand map" -s q -l quiet -d 'No progress display, status lines or summary on stderr'
complete -c gmr -n "__fish_gmr_using_subcommand map" -l accept-new-host-keys -d 'Accept the key of a host that no line of the known_hosts files covers, and add it to the user\'s (trust on first use; hashed with HashKnownHosts), as StrictHostKeyChecking=accept-new in the ssh configuration does; a changed or revoked key is still refused'
complete -c gmr -n "__fish_gmr_using_subcommand map" -l slurm -d 'Run the tasks on Slurm: inside an allocation (salloc, an sbatch script) as job steps (srun) on its nodes, per node as many at once as it has allocated CPUs (or -j); outside one (a login node) as job arrays (sbatch), -j at once (default: the cluster\'s CPUs)'
complete -c gmr -n "__fish_gmr_using_subcommand map" -s h -l help -d 'Print help'
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l status-interval -d 'When stderr is not a terminal (nohup, cron, CI, a Slurm job\'s log), print a plain status line every DURATION: phase, tasks done/total, percentage of bytes, failed attempts, ETA. 0 never' -r
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -s j -l jobs -d 'Tasks to run at once on this machine (default: the number of cores); with --hosts, the slots of a `:` entry that gives no N/' -r
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l retries -d 'Retries of a failed task before the job fails (an attempt lost with its host, e.g. a dropped connection, is rerun elsewhere and not counted)' -r
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l env -d 'Set a variable for every command of the job, on every host: NAME=VALUE, or NAME for its value here (repeatable). The locale (LANG, LANGUAGE, LC_*) and TZ are passed on by default' -r
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l ok-exit -d 'Exit statuses of the job\'s commands that mean success, comma-separated (e.g. 0,1 for grep, which exits 1 when nothing matched)' -r
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l task-timeout -d 'Kill and retry an attempt whose command shows no sign of life (takes no input, prints nothing, writes nothing to stderr) for DURATION: 90s, 10m, 1h; 0 never' -r
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l task-memory -d 'The memory a command (mapper, combiner, reducer) may use, with K, M or G suffix: a memory cgroup of its own where gmr can make one (all of a pipeline; past it the kernel kills it), else RLIMIT_DATA on each process (allocations fail); with --slurm also srun\'s and sbatch\'s --mem. An attempt that fails so is reported as over --task-memory and retried' -r
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l memfree -d 'Start no attempt on a host while its available memory (MemAvailable) is below SIZE, with K, M or G suffix, as GNU parallel\'s --memfree' -r
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l joblog -d 'Append one JSON line per task attempt to FILE (task, attempt, host, start, duration, status, records and bytes, error)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l hosts -d 'Run tasks on these hosts over SSH. HOSTS is a file with one `[N/][user@]host[:port]` per line (N/: N tasks at once, default the host\'s cores; `:` is this machine; `#` comments), or, when no such file exists, the same entries inline, comma-separated. Needs --workdir on a filesystem every host shares (e.g. NFS)' -r -F -a "(__fish_gmr_hosts)"
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l identity -d 'The private key for SSH logins, tried before the keys of ssh-agent and those of the ssh configuration (default: the agent\'s keys, then the configuration\'s IdentityFile, else ~/.ssh/id_rsa, id_ecdsa, id_ecdsa_sk, id_ed25519, id_ed25519_sk, as ssh tries them)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l known-hosts -d 'The user\'s known_hosts file, read before --global-known-hosts, where --accept-new-host-keys adds keys; an unknown, changed or revoked key refuses the host (default: the configuration\'s UserKnownHostsFile, else ~/.ssh/known_hosts, then ~/.ssh/known_hosts2)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l global-known-hosts -d 'Known_hosts files read after the user\'s (default: the configuration\'s GlobalKnownHostsFile, else /etc/ssh/ssh_known_hosts and /etc/ssh/ssh_known_hosts2); repeat for several' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l remote-gmr -d 'The path of gmr on the hosts or Slurm nodes (default: a copy of this gmr that gmr makes in the work directory, WORKDIR/bin/gmr-DIGEST, which must then be writable by you alone)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l slurm-args -d 'Options every srun or sbatch gets, split at blanks: partition, account, time limit, QOS (e.g. "--partition=short --time=10")' -r
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l ssh-timeout -d 'Seconds to wait when connecting to a host, and the longest a host may stay silent (not even answering keepalives) before it counts as hung; a quiet task on a live host is never cut short (at least 5; default: the configuration\'s ConnectTimeout and ServerAliveInterval x ServerAliveCountMax, else 30)' -r
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l ssh-config -d 'The ssh configuration to read instead of ~/.ssh/config and /etc/ssh/ssh_config, as `ssh -F FILE` (`none`: none). Host names of --hosts are resolved as ssh resolves them: aliases, HostName, Port, User, IdentityFile, ProxyJump, ProxyCommand, known_hosts files and StrictHostKeyChecking, HostKeyAlias, HashKnownHosts, timeouts' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l workdir -d 'The work directory (default: the one in the map lines on stdin)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -s q -l quiet -d 'No progress display, status lines or summary on stderr'
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l accept-new-host-keys -d 'Accept the key of a host that no line of the known_hosts files covers, and add it to the user\'s (trust on first use; hashed with HashKnownHosts), as StrictHostKeyChecking=accept-new in the ssh configuration does; a changed or revoked key is still refused'
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -l slurm -d 'Run the tasks on Slurm: inside an allocation (salloc, an sbatch script) as job steps (srun) on its nodes, per node as many at once as it has allocated CPUs (or -j); outside one (a login node) as job arrays (sbatch), -j at once (default: the cluster\'s CPUs)'
complete -c gmr -n "__fish_gmr_using_subcommand shuffle" -s h -l help -d 'Print help'
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -s r -l reducer -d 'The reducer: a command, as for -m, or a built-in (@count, @sum, @min, @max, @identity)' -r -f -a "@count @sum @min @max @identity (__fish_complete_command)"
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -s o -l output -d 'Write part-00000, part-00001, ... and _SUCCESS into DIR (default: the output on stdout, in partition order)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l compress -d 'Compress each part: gz (part-NNNNN.gz) or zst (part-NNNNN.zst); gmr reads such parts back as input' -r -f -a "gz\t''
zst\t''"
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l max-output-keys -d 'With --output-by-key, the most keys a reduce task (or map-only task) may write; one more fails the job, before any of its files lands in DIR' -r
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l status-interval -d 'When stderr is not a terminal (nohup, cron, CI, a Slurm job\'s log), print a plain status line every DURATION: phase, tasks done/total, percentage of bytes, failed attempts, ETA. 0 never' -r
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -s j -l jobs -d 'Tasks to run at once on this machine (default: the number of cores); with --hosts, the slots of a `:` entry that gives no N/' -r
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l retries -d 'Retries of a failed task before the job fails (an attempt lost with its host, e.g. a dropped connection, is rerun elsewhere and not counted)' -r
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l env -d 'Set a variable for every command of the job, on every host: NAME=VALUE, or NAME for its value here (repeatable). The locale (LANG, LANGUAGE, LC_*) and TZ are passed on by default' -r
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l ok-exit -d 'Exit statuses of the job\'s commands that mean success, comma-separated (e.g. 0,1 for grep, which exits 1 when nothing matched)' -r
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l task-timeout -d 'Kill and retry an attempt whose command shows no sign of life (takes no input, prints nothing, writes nothing to stderr) for DURATION: 90s, 10m, 1h; 0 never' -r
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l task-memory -d 'The memory a command (mapper, combiner, reducer) may use, with K, M or G suffix: a memory cgroup of its own where gmr can make one (all of a pipeline; past it the kernel kills it), else RLIMIT_DATA on each process (allocations fail); with --slurm also srun\'s and sbatch\'s --mem. An attempt that fails so is reported as over --task-memory and retried' -r
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l memfree -d 'Start no attempt on a host while its available memory (MemAvailable) is below SIZE, with K, M or G suffix, as GNU parallel\'s --memfree' -r
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l joblog -d 'Append one JSON line per task attempt to FILE (task, attempt, host, start, duration, status, records and bytes, error)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l hosts -d 'Run tasks on these hosts over SSH. HOSTS is a file with one `[N/][user@]host[:port]` per line (N/: N tasks at once, default the host\'s cores; `:` is this machine; `#` comments), or, when no such file exists, the same entries inline, comma-separated. Needs --workdir on a filesystem every host shares (e.g. NFS)' -r -F -a "(__fish_gmr_hosts)"
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l identity -d 'The private key for SSH logins, tried before the keys of ssh-agent and those of the ssh configuration (default: the agent\'s keys, then the configuration\'s IdentityFile, else ~/.ssh/id_rsa, id_ecdsa, id_ecdsa_sk, id_ed25519, id_ed25519_sk, as ssh tries them)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l known-hosts -d 'The user\'s known_hosts file, read before --global-known-hosts, where --accept-new-host-keys adds keys; an unknown, changed or revoked key refuses the host (default: the configuration\'s UserKnownHostsFile, else ~/.ssh/known_hosts, then ~/.ssh/known_hosts2)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l global-known-hosts -d 'Known_hosts files read after the user\'s (default: the configuration\'s GlobalKnownHostsFile, else /etc/ssh/ssh_known_hosts and /etc/ssh/ssh_known_hosts2); repeat for several' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l remote-gmr -d 'The path of gmr on the hosts or Slurm nodes (default: a copy of this gmr that gmr makes in the work directory, WORKDIR/bin/gmr-DIGEST, which must then be writable by you alone)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l slurm-args -d 'Options every srun or sbatch gets, split at blanks: partition, account, time limit, QOS (e.g. "--partition=short --time=10")' -r
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l ssh-timeout -d 'Seconds to wait when connecting to a host, and the longest a host may stay silent (not even answering keepalives) before it counts as hung; a quiet task on a live host is never cut short (at least 5; default: the configuration\'s ConnectTimeout and ServerAliveInterval x ServerAliveCountMax, else 30)' -r
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l ssh-config -d 'The ssh configuration to read instead of ~/.ssh/config and /etc/ssh/ssh_config, as `ssh -F FILE` (`none`: none). Host names of --hosts are resolved as ssh resolves them: aliases, HostName, Port, User, IdentityFile, ProxyJump, ProxyCommand, known_hosts files and StrictHostKeyChecking, HostKeyAlias, HashKnownHosts, timeouts' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l workdir -d 'The work directory (default: the one in the lines on stdin)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l force -d 'Replace an old output in DIR: its part files and _SUCCESS (a DIR holding anything else is refused)'
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l output-by-key -d 'File each output line by its key (its text before the separator, as --key-fields makes it): DIR/KEY/part-NNNNN, _SUCCESS last; needs -o. Keys become safe names: / and other bytes as %HH, the empty key as _EMPTY (FILES in gmr-run(1))'
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -s q -l quiet -d 'No progress display, status lines or summary on stderr'
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l accept-new-host-keys -d 'Accept the key of a host that no line of the known_hosts files covers, and add it to the user\'s (trust on first use; hashed with HashKnownHosts), as StrictHostKeyChecking=accept-new in the ssh configuration does; a changed or revoked key is still refused'
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -l slurm -d 'Run the tasks on Slurm: inside an allocation (salloc, an sbatch script) as job steps (srun) on its nodes, per node as many at once as it has allocated CPUs (or -j); outside one (a login node) as job arrays (sbatch), -j at once (default: the cluster\'s CPUs)'
complete -c gmr -n "__fish_gmr_using_subcommand reduce" -s h -l help -d 'Print help'
complete -c gmr -n "__fish_gmr_using_subcommand status" -l json -d 'Print the status document as JSON (the fields of report.json, less the attempts; docs/status.md)'
complete -c gmr -n "__fish_gmr_using_subcommand status" -l watch -d 'Show it again every 2 seconds, until the job is no longer running'
complete -c gmr -n "__fish_gmr_using_subcommand status" -s h -l help -d 'Print help'
complete -c gmr -n "__fish_gmr_using_subcommand report" -s o -l output -d 'Where to write the page (default WORKDIR/report.html; - for stdout)' -r -F
complete -c gmr -n "__fish_gmr_using_subcommand report" -s h -l help -d 'Print help'
complete -c gmr -n "__fish_gmr_using_subcommand help; and not __fish_seen_subcommand_from run split map shuffle reduce status report help" -f -a "run" -d 'Run a whole job: split, map, shuffle and reduce'
complete -c gmr -n "__fish_gmr_using_subcommand help; and not __fish_seen_subcommand_from run split map shuffle reduce status report help" -f -a "split" -d 'Cut inputs into splits on record boundaries; print one JSON line per split'
complete -c gmr -n "__fish_gmr_using_subcommand help; and not __fish_seen_subcommand_from run split map shuffle reduce status report help" -f -a "map" -d 'Run the mapper on each split (JSON lines on stdin); partition and sort its output'
complete -c gmr -n "__fish_gmr_using_subcommand help; and not __fish_seen_subcommand_from run split map shuffle reduce status report help" -f -a "shuffle" -d 'Merge the sorted runs of each partition (map JSON lines on stdin)'
complete -c gmr -n "__fish_gmr_using_subcommand help; and not __fish_seen_subcommand_from run split map shuffle reduce status report help" -f -a "reduce" -d 'Run the reducer on each merged partition and commit the part files'
complete -c gmr -n "__fish_gmr_using_subcommand help; and not __fish_seen_subcommand_from run split map shuffle reduce status report help" -f -a "status" -d 'Show a job\'s status: phase, tasks, hosts, throughput, counters, failures'
complete -c gmr -n "__fish_gmr_using_subcommand help; and not __fish_seen_subcommand_from run split map shuffle reduce status report help" -f -a "report" -d 'Write a job\'s HTML report: timeline of attempts, partition sizes, task durations, counters, failures'
complete -c gmr -n "__fish_gmr_using_subcommand help; and not __fish_seen_subcommand_from run split map shuffle reduce status report help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gmr -n "__fish_gmr_using_subcommand status" -f -a "(__fish_complete_directories)"
complete -c gmr -n "__fish_gmr_using_subcommand report" -f -a "(__fish_complete_directories)"
