#!/bin/sh
# First start on an empty volume: create the system tables, the app database and user, run the
# init scripts. Later starts find the data and go straight to the server.
set -eu
datadir=/var/lib/mysql
chown -R mysql:mysql "$datadir" /run/mysqld
if [ ! -d "$datadir/mysql" ]; then
  mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db >/dev/null
  mariadbd --user=mysql --datadir="$datadir" --skip-networking --socket=/run/mysqld/init.sock &
  pid=$!
  i=0
  until mariadb-admin --socket=/run/mysqld/init.sock ping >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -lt 60 ] || { echo "mariadb did not start" >&2; exit 1; }
    sleep 0.5
  done
  mariadb --socket=/run/mysqld/init.sock <<SQL
CREATE DATABASE IF NOT EXISTS \`${MARIADB_DATABASE}\`;
CREATE USER IF NOT EXISTS '${MARIADB_USER}'@'%' IDENTIFIED BY '${MARIADB_PASSWORD}';
GRANT ALL ON \`${MARIADB_DATABASE}\`.* TO '${MARIADB_USER}'@'%';
FLUSH PRIVILEGES;
SQL
  for f in /docker-entrypoint-initdb.d/*.sql; do
    [ -f "$f" ] && mariadb --socket=/run/mysqld/init.sock "$MARIADB_DATABASE" < "$f"
  done
  mariadb-admin --socket=/run/mysqld/init.sock shutdown
  wait "$pid" || true
fi
exec mariadbd --user=mysql --datadir="$datadir" --bind-address=0.0.0.0
