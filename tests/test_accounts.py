"""Accounts, sign-in lockout, the audit log and ClientScope against real SQLite files."""
import sqlite3
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from argon2 import PasswordHasher

from seller.data.dataset import UnknownIdError, load_sample
from seller.feedback.audit import AuditLog
from seller.feedback.models import utcnow
from seller.feedback.store import FeedbackStore, Vote
from seller.feedback.users import MAX_FAILURES, AccountDirectory, AccountError, SignInError
from seller.scope import ClientScope, OutOfScopeError

PASSWORD = "correct horse battery"
# real argon2id with small parameters: the suite signs in hundreds of times on 2 shared cores
FAST = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


class Clock:
    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now


@pytest.fixture
def sample():
    return load_sample()


@pytest.fixture
def db(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    yield store, tmp_path / "feedback.db"
    store.dispose()


@pytest.fixture
def directory(db):
    return AccountDirectory(db[0], clock=Clock(), hasher=FAST)


def boutiques(sample):
    return set(sample.clients["home_boutique"].dropna())


def test_passwords_are_stored_only_as_argon2id_hashes(db, sample):
    store, path = db
    directory = AccountDirectory(store)  # the shipped parameters
    directory.add("Anna.K", "associate", ["Tokyo Ginza"], password=PASSWORD, known_boutiques=boutiques(sample))
    raw = path.read_bytes() + (path.with_name(path.name + "-wal").read_bytes()
                               if path.with_name(path.name + "-wal").exists() else b"")
    assert PASSWORD.encode() not in raw
    with sqlite3.connect(path) as conn:
        (hashed,) = conn.execute("SELECT password_hash FROM accounts WHERE username = 'anna.k'").fetchone()
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PasswordHasher().verify(hashed, PASSWORD)
    assert directory.authenticate("ANNA.K", PASSWORD, serving_sample=True).username == "anna.k"


@pytest.mark.parametrize("change, message", [
    (dict(username=""), "username is empty"),
    (dict(username="anna k!"), "username 'anna k!' is not allowed"),
    (dict(username="-anna"), "is not allowed"),
    (dict(username="a" * 65), "is not allowed"),
    (dict(role="owner"), "role 'owner' is not one of associate, manager, admin"),
    (dict(boutiques=["Atlantis"]), "boutique 'Atlantis' is no client's home boutique"),
    (dict(boutiques=[]), "an associate needs at least one boutique"),
    (dict(boutiques=[" "]), "boutique name is empty"),
    (dict(password=""), "password is empty"),
    (dict(password="short"), "password is too short"),
    (dict(password="two\nlines!"), "line break"),
    (dict(display_name="x" * 101), "display name"),
])
def test_bad_input_names_the_problem_and_writes_nothing(directory, sample, db, change, message):
    fields = dict(username="anna", role="associate", boutiques=["Tokyo Ginza"], password=PASSWORD,
                  display_name=None) | change
    with pytest.raises(AccountError, match=message):
        directory.add(fields.pop("username"), fields.pop("role"), fields.pop("boutiques"),
                      known_boutiques=boutiques(sample), **fields)
    with sqlite3.connect(db[1]) as conn:
        assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM account_boutiques").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM audit_events").fetchone() == (0,)


def test_duplicate_and_unknown_accounts(directory, sample):
    directory.add("anna", "associate", ["Tokyo Ginza"], password=PASSWORD, known_boutiques=boutiques(sample))
    with pytest.raises(AccountError, match="username 'anna' already exists"):
        directory.add("ANNA", "manager", password=PASSWORD)
    with pytest.raises(AccountError, match="no account with username 'bob'"):
        directory.set_disabled("bob")
    with pytest.raises(AccountError, match="no account with username 'bob'"):
        directory.set_password("bob", PASSWORD)
    assert [a.username for a in directory.list()] == ["anna"]


def test_sign_in_refusals_are_clear(directory, sample):
    directory.add("anna", "associate", ["Tokyo Ginza"], password=PASSWORD, known_boutiques=boutiques(sample))
    directory.add("demo", "manager", password=PASSWORD, sample_only=True)
    directory.add("sso@house.com", "manager", password=None)
    for username, password, reason, message in [
        ("nobody", PASSWORD, "wrong", "Unknown username or wrong password"),
        ("anna", "wrong password", "wrong", "Unknown username or wrong password"),
        ("anna", "", "wrong", "Enter your password"),
        ("anna smith;--", PASSWORD, "wrong", "Username may hold only"),
        ("sso@house.com", PASSWORD, "wrong", "Unknown username or wrong password"),  # OIDC only
    ]:
        with pytest.raises(SignInError, match=message) as refused:
            directory.authenticate(username, password, serving_sample=True)
        assert refused.value.reason == reason
    with pytest.raises(SignInError, match="only on the shipped sample store"):
        directory.authenticate("demo", PASSWORD, serving_sample=False)
    assert directory.authenticate("demo", PASSWORD, serving_sample=True).role == "manager"
    directory.set_disabled("anna")
    with pytest.raises(SignInError, match="disabled") as refused:
        directory.authenticate("anna", PASSWORD, serving_sample=True)
    assert refused.value.reason == "disabled"
    directory.set_disabled("anna", False)
    assert directory.authenticate("anna", PASSWORD, serving_sample=True).last_sign_in_at is not None


def test_five_failures_lock_the_username_for_15_minutes(directory, sample):
    directory.add("anna", "associate", ["Tokyo Ginza"], password=PASSWORD, known_boutiques=boutiques(sample))
    for _ in range(MAX_FAILURES):
        with pytest.raises(SignInError, match="wrong password"):
            directory.authenticate("anna", "not it at all", serving_sample=True)
    with pytest.raises(SignInError, match="locked after 5 failed sign-ins") as refused:
        directory.authenticate("anna", PASSWORD, serving_sample=True)  # even the right password
    assert refused.value.reason == "locked"
    directory.clock.now += timedelta(minutes=14, seconds=59)
    with pytest.raises(SignInError, match="locked"):
        directory.authenticate("anna", PASSWORD, serving_sample=True)
    directory.clock.now += timedelta(seconds=2)
    assert directory.authenticate("anna", PASSWORD, serving_sample=True).username == "anna"
    # unknown usernames lock too (no free guessing of which names exist)
    for _ in range(MAX_FAILURES):
        with pytest.raises(SignInError, match="Unknown username"):
            directory.authenticate("ghost", PASSWORD, serving_sample=True)
    with pytest.raises(SignInError, match="locked"):
        directory.authenticate("ghost", PASSWORD, serving_sample=True)


def test_failures_spread_over_more_than_15_minutes_do_not_lock(directory, sample):
    directory.add("anna", "associate", ["Tokyo Ginza"], password=PASSWORD, known_boutiques=boutiques(sample))
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(SignInError, match="wrong password"):
            directory.authenticate("anna", "not it at all", serving_sample=True)
    directory.clock.now += timedelta(minutes=16)
    with pytest.raises(SignInError, match="wrong password"):
        directory.authenticate("anna", "not it at all", serving_sample=True)
    assert directory.authenticate("anna", PASSWORD, serving_sample=True).username == "anna"


def test_racing_wrong_passwords_cannot_pass_the_fifth_failure(directory, sample):
    directory.add("anna", "associate", ["Tokyo Ginza"], password=PASSWORD, known_boutiques=boutiques(sample))
    reasons, lock = [], threading.Lock()

    def guess():
        for _ in range(3):
            try:
                directory.authenticate("anna", "guessing wrong", serving_sample=True)
            except SignInError as e:
                with lock:
                    reasons.append(e.reason)

    threads = [threading.Thread(target=guess) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reasons.count("wrong") == MAX_FAILURES and reasons.count("locked") == 24 - MAX_FAILURES


def test_eight_threads_of_sign_ins_and_votes_lose_nothing(db, sample):
    store, _ = db
    directory = AccountDirectory(store, hasher=FAST)
    log = AuditLog(store)
    for t in range(8):
        directory.add(f"a{t}", "associate", ["Tokyo Ginza"], password=PASSWORD, known_boutiques=boutiques(sample))
    errors = []

    def work(t):
        try:
            for i in range(5):
                account = directory.authenticate(f"a{t}", PASSWORD, serving_sample=True)
                for j in range(4):
                    log.vote(Vote(associate_id=account.username, client_id="C001", item_id=f"I{i}{j}",
                                  style="feature", variant="feature", explanation="x", model_version="m1",
                                  vote=1))
        except Exception as e:  # surfaced below: a thread's exception would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    votes = store.votes()
    assert votes.groupby("associate_id").size().to_dict() == {f"a{t}": 20 for t in range(8)}
    actions = log.frame().groupby(["username", "action"]).size().to_dict()
    for t in range(8):
        assert actions[(f"a{t}", "sign_in")] == 5 and actions[(f"a{t}", "vote")] == 20
    assert all(a.last_sign_in_at is not None for a in directory.list())


def test_vote_and_its_audit_row_commit_together(db):
    store, path = db
    log = AuditLog(store)
    vote = Vote(associate_id="anna", client_id="C001", item_id="I0001", style="feature", variant="feature",
                explanation="x", model_version="m1", vote=-1)
    log.vote(vote)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT associate_id, client_id, vote FROM feedback").fetchall() == [("anna", "C001", -1)]
        assert conn.execute("SELECT username, action, client_id, item_id, detail FROM audit_events").fetchall() == [
            ("anna", "vote", "C001", "I0001", "-1 feature feature m1")]
    with pytest.raises(ValueError, match="audit action 'peek'"):
        log.record("anna", "peek")
    assert len(log.frame()) == 1


def test_client_scope_by_role(sample):
    ginza = sample.clients[sample.clients["home_boutique"] == "Tokyo Ginza"]
    other = sample.clients[sample.clients["home_boutique"] != "Tokyo Ginza"]["client_id"].iloc[0]
    associate = ClientScope(sample, "anna", "associate", ("Tokyo Ginza",))
    assert set(associate.clients["client_id"]) == set(ginza["client_id"])
    mine = ginza["client_id"].iloc[0]
    assert associate.client(mine)["home_boutique"] == "Tokyo Ginza"
    assert set(associate.events(mine)["client_id"]) == {mine}
    with pytest.raises(OutOfScopeError, match=f"client {other} is not a client of anna's boutiques"):
        associate.client(other)
    with pytest.raises(OutOfScopeError):
        associate.events(other)
    with pytest.raises(UnknownIdError):
        associate.require("C999")
    assert not associate.may("experiments") and not associate.may("model")

    manager = ClientScope(sample, "max", "manager")
    assert len(manager.clients) == len(sample.clients) and manager.client(other) is not None
    assert manager.may("experiments") and manager.may("audit") and not manager.may("users")
    admin = ClientScope(sample, "root", "admin")
    assert admin.may("model") and admin.may("users")
    with pytest.raises(ValueError, match="role must be one of"):
        ClientScope(sample, "x", "owner")

    class Recorder:  # any model: the guard must refuse before the model is asked
        model_version = "v1"
        asked = []

        def recommend(self, client_id, k=5):
            self.asked.append(client_id)
            return []

    guarded = associate.guard(Recorder())
    guarded.recommend(mine, k=3)
    with pytest.raises(OutOfScopeError):
        guarded.recommend(other)
    with pytest.raises(OutOfScopeError):
        guarded.explain_many(other, ["I0001"], "feature")
    assert Recorder.asked == [mine] and guarded.model_version == "v1"


def test_outreach_leaves_out_clients_without_consent(sample):
    scope = ClientScope(sample, "max", "manager")
    outreach = scope.outreach_clients()
    consenting = set(sample.clients.loc[sample.clients["consent_marketing"], "client_id"])
    assert set(outreach["client_id"]) == consenting and len(consenting) < len(sample.clients)
    assert list(outreach.columns) == ["client_id", "tier", "home_boutique"]  # ids, no names
    associate = ClientScope(sample, "anna", "associate", ("Tokyo Ginza",))
    assert set(associate.outreach_clients()["client_id"]) <= set(associate.clients["client_id"]) & consenting


def run_cli(*args, stdin="", db=None):
    return subprocess.run([sys.executable, "-m", "seller", "users", *args, "--db", db], input=stdin,
                          capture_output=True, text=True)


def test_cli_add_list_disable_set_password(db):
    url = f"sqlite:///{db[1]}"
    secret = "s3cret-from-stdin"
    added = run_cli("add", "--username", "Anna", "--role", "associate", "--boutique", "Tokyo Ginza",
                    "--password-stdin", stdin=secret + "\n", db=url)
    assert added.returncode == 0, added.stderr
    assert "added anna (associate; Tokyo Ginza)" in added.stdout and secret not in added.stdout + added.stderr
    bad = run_cli("add", "--username", "bob", "--role", "associate", "--boutique", "Atlantis",
                  "--password-stdin", stdin=secret + "\n", db=url)
    assert bad.returncode == 1 and "boutique 'Atlantis' is no client's home boutique" in bad.stderr
    empty = run_cli("add", "--username", "bob", "--role", "manager", "--password-stdin", stdin="\n", db=url)
    assert empty.returncode == 1 and "password is empty" in empty.stderr
    no_tty = run_cli("add", "--username", "bob", "--role", "manager", db=url)
    assert no_tty.returncode == 1 and "--password-stdin" in no_tty.stderr
    listed = run_cli("list", db=url)
    assert listed.returncode == 0 and "anna" in listed.stdout and "bob" not in listed.stdout
    assert "argon2" not in listed.stdout
    assert run_cli("disable", "--username", "anna", db=url).returncode == 0
    assert "disabled" in run_cli("list", db=url).stdout
    changed = run_cli("set-password", "--username", "anna", "--password-stdin", stdin="another-secret\n", db=url)
    assert changed.returncode == 0, changed.stderr
    missing = run_cli("disable", "--username", "nobody", db=url)
    assert missing.returncode == 1 and "no account with username 'nobody'" in missing.stderr
    directory = AccountDirectory(db[0])
    directory.set_disabled("anna", False)
    assert directory.authenticate("anna", "another-secret", serving_sample=True).username == "anna"
    actions = list(AuditLog(db[0]).frame()["action"])
    assert actions[:3] == ["account_added", "account_disabled", "password_set"]
