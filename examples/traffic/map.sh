#!/bin/sh
# Traffic mapper: one "path<TAB>bytes" line per request of a web server's
# access log (Common Log Format), the query string cut off. A line that is
# not a whole log line is counted and skipped; server errors (5xx) are
# counted too (reporter:counter: lines on stderr).
exec awk '
  NF != 10 || $9 !~ /^[1-5][0-9][0-9]$/ { print "reporter:counter:traffic,malformed lines,1" > "/dev/stderr"; next }
  $9 >= 500 { print "reporter:counter:traffic,server errors,1" > "/dev/stderr" }
  { path = $7; sub(/\?.*/, "", path); print path "\t" ($10 == "-" ? 0 : $10) }'
