#!/usr/bin/env bash
# Run once by the mysql image on an empty data directory, after MYSQL_USER exists. Kept non-executable: the
# entrypoint then sources it, which provides docker_process_sql. Creates the three databases for MYSQL_USER.
for database in comfyui_client comfyui_admin comfyui_shared; do
  docker_process_sql --database=mysql <<SQL
CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
GRANT ALL PRIVILEGES ON \`${database}\`.* TO '${MYSQL_USER}'@'%';
SQL
done
