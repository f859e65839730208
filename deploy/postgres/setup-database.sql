-- Role and database of Avatar Data Generator. Run once as the PostgreSQL superuser:
--
--   sudo -u postgres psql -v ON_ERROR_STOP=1 \
--        -v app_password="$(cat /root/avatargen-db-password)" \
--        -f deploy/postgres/setup-database.sql
--
-- Optional: -v app_role=avatargen -v app_db=avatargen (the defaults below).
-- The password is passed as a psql variable and quoted by psql (:'app_password'), so "#", "$",
-- quotes and spaces in it are safe here. Put the same password in /etc/avatargen/avatargen.env
-- as DB_PASSWORD='...' (single quotes; see the quoting rule in deploy/env.example).
-- Running the script again changes the password and nothing else.

\if :{?app_role}
\else
  \set app_role avatargen
\endif
\if :{?app_db}
\else
  \set app_db avatargen
\endif
\if :{?app_password}
\else
  \echo 'Set the password: psql -v ON_ERROR_STOP=1 -v app_password=... -f setup-database.sql'
  SELECT 1 / 0 AS app_password_is_missing;
  \quit
\endif

-- The application role: may log in, owns nothing outside its database, creates no roles or databases.
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION', :'app_role')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_role') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'app_role', :'app_password') \gexec

-- The database, owned by the role: migrations (MikroORM) and the job queue (pg-boss, schema
-- "pgboss") create their tables and schemas in it.
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', :'app_db', :'app_role', 'UTF8')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'app_db') \gexec

-- Nobody else connects; the owner may create schemas (pgboss) and tables.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'app_db') \gexec
SELECT format('GRANT CONNECT, TEMPORARY, CREATE ON DATABASE %I TO %I', :'app_db', :'app_role') \gexec

\connect :"app_db"
-- PostgreSQL 15+ no longer lets every role create in "public"; the application owns it instead.
SELECT format('ALTER SCHEMA public OWNER TO %I', :'app_role') \gexec
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
