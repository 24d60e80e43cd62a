#!/bin/sh
# The EECS 485 grep mapper: lines containing "product" in any case, stripped
# of surrounding blanks, as 1<TAB>line.
exec awk '{ if (tolower($0) ~ /product/) { sub(/^[ \t]+/, ""); sub(/[ \t]+$/, ""); print "1\t" $0 } }'
