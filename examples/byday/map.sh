#!/bin/sh
# By-day mapper: each access log line (Common Log Format) keyed by its day,
# 2024-May-01, for --output-by-key to file it under by-day/2024-May-01/.
exec awk '{ split(substr($4, 2, 11), d, "/"); print d[3] "-" d[2] "-" d[1] "\t" $0 }'
