"""`fabhub users`: creating the first admin on a fresh installation, and listing who can log in. Plain (not
async) tests: the command runs its own event loop."""

import uuid

import psycopg
import pytest
from typer.testing import CliRunner

from fabhub.cli import app

runner = CliRunner()


@pytest.fixture
def env(db_url):
    return {"FABHUB_DATABASE_URL": db_url}


@pytest.fixture
def empty_db_url(timescale_backend):
    """A database no FabHub process has migrated yet: a fresh installation."""
    name = f"empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(timescale_backend.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield timescale_backend.url(name)
    timescale_backend.drop(name)


def users(db_url):
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT id, email, role, organization_id, password_hash FROM app_user ORDER BY id"
        ).fetchall()


def test_first_admin_on_a_fresh_database_with_a_hidden_prompt(empty_db_url):
    db_url = empty_db_url
    result = runner.invoke(
        app,
        ["users", "create", "--email", "Root@Center.cn", "--name", "管理员"],
        input="s3cret password\ns3cret password\n",
        env={"FABHUB_DATABASE_URL": db_url},
    )
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.stdout
    [(user_id, email, role, org, password_hash)] = users(db_url)
    assert result.stdout.strip().splitlines()[-1] == str(user_id)
    assert (email, role, org) == ("root@center.cn", "admin", None)
    assert password_hash.startswith("$argon2id$")
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT actor, action FROM audit_log").fetchall() == [("cli", "create")]


def test_create_customer_from_stdin_and_list(env, db_url):
    with psycopg.connect(db_url) as conn:
        (org,) = conn.execute(
            "INSERT INTO organization (name, uscc) VALUES ('靖江精工', '91350100M000100Y43') RETURNING id"
        ).fetchone()
    args = ["users", "create", "--email", "op@jj.cn", "--name", "Op", "--role", "customer", "--organization", str(org)]
    result = runner.invoke(app, [*args, "--password-stdin"], input="long enough\n", env=env)
    assert result.exit_code == 0, result.output
    [(user_id, _, role, org_id, _)] = users(db_url)
    assert (role, org_id) == ("customer", org)
    listed = runner.invoke(app, ["users", "list"], env=env)
    assert listed.exit_code == 0
    assert listed.stdout.splitlines() == [
        "id\temail\trole\torganization\tactive\tname",
        f"{user_id}\top@jj.cn\tcustomer\t{org}\tyes\tOp",
    ]


@pytest.mark.parametrize(
    ("args", "password", "reason"),
    [
        (["--email", "taken@center.cn", "--name", "Again"], "long enough", "is in use by another account"),
        (["--email", "new@center.cn", "--name", "Weak"], "short", "8 to 128 characters"),
        (["--email", "new@center.cn", "--name", "C", "--role", "customer", "--organization", "9"], "long enough",
         "organization 9 does not exist"),
        (["--email", "new@center.cn", "--name", "C", "--role", "customer"], "long enough", "belongs to an organization"),
        (["--email", "not an email", "--name", "X"], "long enough", "is not an email address"),
    ],
)  # fmt: skip
def test_refusals_exit_2_with_the_reason(env, db_url, args, password, reason):
    first = ["users", "create", "--email", "taken@center.cn", "--name", "First", "--password-stdin"]
    assert runner.invoke(app, first, input="long enough\n", env=env).exit_code == 0
    result = runner.invoke(app, ["users", "create", *args, "--password-stdin"], input=f"{password}\n", env=env)
    assert result.exit_code == 2
    assert reason in " ".join(result.stderr.split())
    assert len(users(db_url)) == 1


def test_an_unknown_role_is_a_usage_error(env, db_url):
    result = runner.invoke(
        app, ["users", "create", "--email", "a@b.cn", "--name", "A", "--role", "boss", "--password-stdin"], env=env
    )
    assert result.exit_code == 2
    assert "boss" in result.stderr
    assert users(db_url) == []
