#!/bin/sh
# Traffic reducer: its input is sorted by path, so each path's requests are
# adjacent; print "path<TAB>requests<TAB>bytes" once per path.
exec awk -F'\t' '
  NR > 1 && $1 != path { print path "\t" n "\t" bytes; n = 0; bytes = 0 }
  { path = $1; n++; bytes += $2 }
  END { if (NR > 0) print path "\t" n "\t" bytes }'
