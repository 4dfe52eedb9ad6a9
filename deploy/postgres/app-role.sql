-- compose.yaml's one-shot db-init, run by psql as the bootstrap superuser (POSTGRES_USER) on the app's
-- database: the role the app connects as, with no superuser rights, owning that database and everything
-- of ours in its public schema (tables, sequences, views, functions), so that its own migrations (run as
-- it, deploy/entrypoint.sh) can create, alter and replace them. Safe to run again on every
-- `docker compose up`: each statement sets the state, none adds to it.
--   psql -v ON_ERROR_STOP=1 -v app_user=NAME -v app_password=SECRET -f app-role.sql
\set ON_ERROR_STOP on

-- The role, made once; its rights and password set every time (a changed POSTGRES_APP_PASSWORD applies).
SELECT format('CREATE ROLE %I LOGIN', :'app_user')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user')
\gexec
ALTER ROLE :"app_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'app_password';

-- Owning the database gives it CREATE on the public schema (owned by pg_database_owner since PostgreSQL 15),
-- and nothing on any other database.
SELECT format('ALTER DATABASE %I OWNER TO %I', current_database(), :'app_user')
\gexec

-- A stack that ran before this role existed has its tables owned by the superuser: hand them over, so the
-- next migration may alter them. REASSIGN OWNED cannot be used: the bootstrap superuser owns the system
-- catalogs too. Sequences that belong to a column move with their table.
SELECT format('ALTER TABLE %s OWNER TO %I', c.oid::regclass, :'app_user')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relowner <> (
    SELECT oid FROM pg_roles WHERE rolname = :'app_user'
)
\gexec
SELECT format(
    'ALTER %s %s OWNER TO %I',
    CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' ELSE 'MATERIALIZED VIEW' END,
    c.oid::regclass,
    :'app_user'
)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('S', 'v', 'm') AND c.relowner <> (
    SELECT oid FROM pg_roles WHERE rolname = :'app_user'
) AND NOT EXISTS (
    SELECT FROM pg_depend d
    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')
)
\gexec

-- Functions of ours (the image count's triggers): a later migration may replace them. Those of an extension
-- (pg_trgm's, in the same schema) stay with the extension.
SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, :'app_user')
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND p.proowner <> (
    SELECT oid FROM pg_roles WHERE rolname = :'app_user'
) AND NOT EXISTS (
    SELECT FROM pg_depend d
    WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
)
\gexec
