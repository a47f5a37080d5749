"""Tests for :mod:`mesostw.auth.credentials` and :mod:`mesostw.auth.crammd5`: credentials files, the SASL
CRAM-MD5 exchange on twisted.cred, HTTP-Basic-style checks and the failure throttle."""

from __future__ import annotations

import json
import os

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer, task
from twisted.trial import unittest
from zope.interface import Interface, implementer
from zope.interface.verify import verifyObject

from mesostw.auth.crammd5 import (
    MECHANISMS,
    AuthenticationError,
    Authenticator,
    CredentialsChecker,
    FailureThrottle,
    UnsupportedMechanism,
    respond,
)
from mesostw.auth.credentials import Credential, load_credential, load_credentials
from mesostw.auth.pb import PBAuthentication
from mesostw.auth.policy import Security
from tests.helpers.clocktest import ClockTestCase

SECRETS = {"sherman": "kitesurf", "ops": "hunter2-very-secret"}


class CredentialsFileTestsMixin:
    """Helpers for writing credentials files into the test's temporary directory."""

    def write(self, text: str, name: str = "credentials") -> str:
        """Write ``text`` to a fresh file and return its path."""
        directory = self.mktemp()  # type: ignore[attr-defined]
        os.makedirs(directory)
        path = os.path.join(directory, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path


class LoadCredentialsTests(CredentialsFileTestsMixin, unittest.TestCase):
    """``load_credentials``: the master's ``--credentials``."""

    def test_json(self) -> None:
        """The JSON format gives every principal with its secret, in file order."""
        path = self.write('{"credentials": [{"principal": "sherman", "secret": "kitesurf"},'
                          ' {"principal": "ops", "secret": "hunter2-very-secret"}]}')
        result = load_credentials(path)
        self.assertEqual(result, SECRETS)
        self.assertEqual(list(result), ["sherman", "ops"])

    def test_file_url(self) -> None:
        """A ``file:///path`` value reads the same file as the bare path."""
        path = self.write('{"credentials": [{"principal": "sherman", "secret": "kitesurf"}]}')
        self.assertEqual(load_credentials("file://" + os.path.abspath(path)), {"sherman": "kitesurf"})

    def test_json_ignores_unknown_keys(self) -> None:
        """Unknown keys in a JSON credential are ignored, as protobuf's JSON reader does."""
        path = self.write('{"credentials": [{"principal": "p", "secret": "s", "comment": "x"}], "v": 1}')
        self.assertEqual(load_credentials(path), {"p": "s"})

    def test_text(self) -> None:
        """The text format takes one whitespace-separated pair per line, skipping blanks and comments."""
        path = self.write("# cluster credentials\n\nsherman kitesurf\n   \n  # ops team\nops\thunter2-very-secret\n")
        self.assertEqual(load_credentials(path), SECRETS)

    def test_text_secret_may_hold_hash(self) -> None:
        """Only whole-line comments exist: a ``#`` inside a secret is part of it."""
        path = self.write("p se#cret\n")
        self.assertEqual(load_credentials(path), {"p": "se#cret"})

    def test_missing_file(self) -> None:
        """A missing file is a ValueError naming the path."""
        path = os.path.abspath(self.mktemp())
        error = self.assertRaises(ValueError, load_credentials, "file://" + path)
        self.assertIn(path, str(error))
        self.assertIn("cannot read credentials file", str(error))

    def test_empty_value(self) -> None:
        """An empty flag value is an error, not the current directory."""
        self.assertRaises(ValueError, load_credentials, "  ")

    def test_bad_json(self) -> None:
        """Invalid JSON is reported with the file, line and column."""
        path = self.write('{"credentials": [\n  {"principal": "p", "secret": "s"\n]}')
        error = str(self.assertRaises(ValueError, load_credentials, path))
        self.assertIn(path, error)
        self.assertIn("invalid JSON at line 3 column 1", error)

    def test_json_wrong_shape(self) -> None:
        """JSON without a ``credentials`` list says what was expected."""
        path = self.write('{"principal": "p", "secret": "s"}')
        error = str(self.assertRaises(ValueError, load_credentials, path))
        self.assertIn('expected a JSON object {"credentials"', error)

    def test_json_entry_errors_all_reported(self) -> None:
        """Every broken JSON entry is reported at once, each by its index."""
        path = self.write('{"credentials": [{"secret": "s1"}, {"principal": "b"}, "x",'
                          ' {"principal": "a b", "secret": "s2"}, {"principal": 3, "secret": 4},'
                          ' {"principal": "e", "secret": ""}]}')
        error = str(self.assertRaises(ValueError, load_credentials, path))
        for expected in ("credentials[0]: has no principal", "credentials[1]: has no secret",
                         "credentials[2]: expected an object", "credentials[3]: the principal must not contain",
                         "credentials[4]: the principal must be a string",
                         "credentials[4]: the secret must be a string", "credentials[5]: has an empty secret"):
            self.assertIn(expected, error)

    def test_principals_with_control_characters(self) -> None:
        """Principals holding control characters (DEL included) are refused, in both formats; secrets may hold
        any character but whitespace."""
        for principal in ("a\u0001b", "a\u007fb", "a\u001fb"):
            path = self.write(json.dumps({"credentials": [{"principal": principal, "secret": "s"}]}))
            self.assertIn("the principal must not contain", str(self.assertRaises(ValueError, load_credentials, path)))
        for principal in ("a\u0001b", "a\u007fb"):
            path = self.write(f"{principal} secret\n")
            self.assertIn("line 1: the principal must not contain",
                          str(self.assertRaises(ValueError, load_credentials, path)))
        self.assertEqual(load_credentials(self.write("ops s\u0001~#\n")), {"ops": "s\u0001~#"})

    def test_json_after_blank_lines(self) -> None:
        """A JSON file may begin with blank lines and spaces."""
        path = self.write('\n\n  {"credentials": [{"principal": "ops", "secret": "s"}]}\n')
        self.assertEqual(load_credentials(path), {"ops": "s"})

    def test_duplicate_principal(self) -> None:
        """A principal given twice is an error naming both lines."""
        path = self.write("sherman kitesurf\nops pw1\nsherman other\n")
        error = str(self.assertRaises(ValueError, load_credentials, path))
        self.assertIn("line 3: duplicate principal 'sherman' (first at line 1)", error)

    def test_duplicate_principal_json(self) -> None:
        """A principal given twice in JSON is an error naming both entries."""
        path = self.write('{"credentials": [{"principal": "p", "secret": "a"}, {"principal": "p", "secret": "b"}]}')
        self.assertIn("credentials[1]: duplicate principal 'p' (first at credentials[0])",
                      str(self.assertRaises(ValueError, load_credentials, path)))

    def test_line_without_secret(self) -> None:
        """A line with a principal but no secret is an error naming the file and line."""
        path = self.write("sherman kitesurf\n\nlonely\n")
        error = str(self.assertRaises(ValueError, load_credentials, path))
        self.assertIn(path, error)
        self.assertIn("line 3: expected 'principal secret', found no secret", error)

    def test_text_errors_all_reported(self) -> None:
        """Every bad line is reported in one error."""
        path = self.write("a\nb c d\ne f\ng\n")
        error = str(self.assertRaises(ValueError, load_credentials, path))
        self.assertIn("line 1:", error)
        self.assertIn("line 2: expected 'principal secret', found 3 fields", error)
        self.assertIn("line 4:", error)
        self.assertNotIn("line 3", error)

    def test_no_credentials(self) -> None:
        """A file holding only comments is an error: it would lock everyone out."""
        path = self.write("# nobody yet\n")
        self.assertIn("holds no credentials", str(self.assertRaises(ValueError, load_credentials, path)))

    def test_not_utf8(self) -> None:
        """A file that is not UTF-8 text is a ValueError, not a UnicodeDecodeError."""
        path = self.write("")
        with open(path, "wb") as f:
            f.write(b"p \xff\xfe\n")
        self.assertIn("not UTF-8", str(self.assertRaises(ValueError, load_credentials, path)))

    def test_secrets_not_in_errors(self) -> None:
        """No error message repeats a secret, whatever line or entry it was on."""
        path = self.write("sherman kitesurf\nsherman SECRET-ONE\nSECRET-TWO\nops SECRET THREE\n")
        error = str(self.assertRaises(ValueError, load_credentials, path))
        for secret in ("kitesurf", "SECRET-ONE", "SECRET-TWO", "THREE"):
            self.assertNotIn(secret, error)
        path = self.write('{"credentials": [{"principal": "p", "secret": "SECRET-J1"},'
                          ' {"principal": "p", "secret": "SECRET-J2"}, {"secret": "SECRET-J3"}]}')
        error = str(self.assertRaises(ValueError, load_credentials, path))
        for secret in ("SECRET-J1", "SECRET-J2", "SECRET-J3"):
            self.assertNotIn(secret, error)


class LoadCredentialTests(CredentialsFileTestsMixin, unittest.TestCase):
    """``load_credential``: an agent's or framework's ``--credential``."""

    def test_json(self) -> None:
        """A JSON object gives one Credential."""
        path = self.write('{"principal": "agent-1", "secret": "s3cret"}')
        self.assertEqual(load_credential(path), Credential("agent-1", "s3cret"))

    def test_text(self) -> None:
        """A single ``principal secret`` line (comments allowed) gives one Credential."""
        path = self.write("# the agent\nagent-1 s3cret\n")
        self.assertEqual(load_credential("file://" + os.path.abspath(path)), Credential("agent-1", "s3cret"))

    def test_two_lines(self) -> None:
        """More than one credential is an error."""
        path = self.write("a b\nc d\n")
        self.assertIn("holds 2 credentials, expected one (at line 1, line 2)",
                      str(self.assertRaises(ValueError, load_credential, path)))

    def test_many_format_rejected(self) -> None:
        """The master's list format is not a single credential."""
        path = self.write('{"credentials": [{"principal": "p", "secret": "s"}]}')
        self.assertIn("the credential: has no principal", str(self.assertRaises(ValueError, load_credential, path)))

    def test_empty(self) -> None:
        """An empty file is an error."""
        path = self.write("\n")
        self.assertIn("holds no credential", str(self.assertRaises(ValueError, load_credential, path)))

    def test_missing_secret(self) -> None:
        """A JSON credential without a secret is an error rather than an empty password."""
        path = self.write('{"principal": "agent-1"}')
        self.assertIn("has no secret", str(self.assertRaises(ValueError, load_credential, path)))

    def test_repr_hides_secret(self) -> None:
        """A Credential's repr and str show the principal, never the secret."""
        credential = Credential("agent-1", "s3cret-value")
        self.assertEqual(repr(credential), "Credential(principal='agent-1')")
        self.assertNotIn("s3cret-value", str(credential))
        self.assertNotIn("s3cret-value", repr([credential]))


@implementer(IRealm)
class Realm:
    """A realm whose avatar is the avatar ID itself, to see what a Portal hands on."""

    def requestAvatar(self, avatarId, mind, *interfaces):  # type: ignore[no-untyped-def]
        """Return the avatar ID as the avatar."""
        return interfaces[0], avatarId, lambda: None


class CredentialsCheckerTests(unittest.TestCase):
    """``CredentialsChecker`` with HTTP-Basic-style ``UsernamePassword`` credentials."""

    def setUp(self) -> None:
        self.checker = CredentialsChecker(SECRETS)

    def test_interface(self) -> None:
        """The checker provides ICredentialsChecker."""
        self.assertTrue(verifyObject(ICredentialsChecker, self.checker))

    def test_right_password(self) -> None:
        """The right password yields the principal as str."""
        result = self.successResultOf(self.checker.requestAvatarId(UsernamePassword(b"sherman", b"kitesurf")))
        self.assertEqual(result, "sherman")

    def test_str_credentials(self) -> None:
        """Usernames and passwords may be str as well as UTF-8 bytes."""
        checker = CredentialsChecker({"jürgen": "pässword"})
        as_text = UsernamePassword("jürgen", "pässword")  # type: ignore[arg-type]
        self.assertEqual(self.successResultOf(checker.requestAvatarId(as_text)), "jürgen")
        self.assertEqual(self.successResultOf(checker.requestAvatarId(
            UsernamePassword("jürgen".encode(), "pässword".encode()))), "jürgen")

    def test_wrong_and_unknown_alike(self) -> None:
        """A wrong password and an unknown principal fail with the same UnauthorizedLogin."""
        wrong = self.failureResultOf(self.checker.requestAvatarId(UsernamePassword(b"sherman", b"nope")),
                                     UnauthorizedLogin)
        unknown = self.failureResultOf(self.checker.requestAvatarId(UsernamePassword(b"nobody", b"kitesurf")),
                                       UnauthorizedLogin)
        self.assertEqual((type(wrong.value), wrong.value.args), (type(unknown.value), unknown.value.args))

    def test_bad_usernames(self) -> None:
        """Empty, non-UTF-8 or prefix usernames and passwords fail."""
        for username, password in ((b"", b""), (b"\xff", b"kitesurf"), (b"sher", b"kitesurf"),
                                   (b"sherman", b"kitesur"), (b"sherman", b"")):
            self.failureResultOf(self.checker.requestAvatarId(UsernamePassword(username, password)),
                                 UnauthorizedLogin)

    def test_portal(self) -> None:
        """Behind a Portal, the realm receives the principal."""
        portal = Portal(Realm(), [self.checker])
        _, avatar, _ = self.successResultOf(portal.login(UsernamePassword(b"ops", b"hunter2-very-secret"),
                                                         None, Interface))
        self.assertEqual(avatar, "ops")
        self.failureResultOf(portal.login(UsernamePassword(b"ops", b"x"), None, Interface), UnauthorizedLogin)

    def test_repr_hides_secrets(self) -> None:
        """The checker's repr counts principals and shows no secret."""
        self.assertNotIn("kitesurf", repr(self.checker))
        self.assertNotIn("sherman", repr(self.checker))



class CramMD5Tests(unittest.TestCase):
    """The server-side ``Authenticator`` and the client-side ``respond``."""

    def setUp(self) -> None:
        self.checker = CredentialsChecker(SECRETS)

    def exchange(self, credential: Credential) -> tuple[Authenticator, bytes]:
        """Start an exchange and answer its challenge with ``credential``."""
        authenticator = Authenticator(self.checker, host="master.example")
        challenge = authenticator.start("CRAM-MD5")
        return authenticator, respond(credential, challenge)

    def test_mechanisms(self) -> None:
        """CRAM-MD5 is the one mechanism offered."""
        self.assertEqual(MECHANISMS, ("CRAM-MD5",))

    def test_round_trip(self) -> None:
        """The right secret authenticates: the step fires with the principal."""
        authenticator, response = self.exchange(Credential("sherman", "kitesurf"))
        self.assertIsNone(authenticator.principal)
        self.assertEqual(self.successResultOf(authenticator.step(response)), "sherman")
        self.assertEqual(authenticator.principal, "sherman")

    def test_challenge_format(self) -> None:
        """The challenge is an RFC 822 msg-id naming the host."""
        challenge = Authenticator(self.checker, host="master.example").start("CRAM-MD5")
        self.assertTrue(challenge.startswith(b"<") and challenge.endswith(b"@master.example>"), challenge)

    def test_rfc2195_vector(self) -> None:
        """``respond`` computes the example response of RFC 2195."""
        response = respond(Credential("tim", "tanstaaftanstaaf"), b"<1896.697170952@postoffice.reston.mci.net>")
        self.assertEqual(response, b"tim b913a602c7eda7a495b4e6e7334d3890")

    def test_wrong_secret(self) -> None:
        """A wrong secret fails with UnauthorizedLogin and leaves no principal."""
        authenticator, response = self.exchange(Credential("sherman", "windsurf"))
        self.failureResultOf(authenticator.step(response), UnauthorizedLogin)
        self.assertIsNone(authenticator.principal)

    def test_unknown_principal(self) -> None:
        """An unknown principal fails exactly like a wrong secret."""
        authenticator, response = self.exchange(Credential("mallory", "kitesurf"))
        unknown = self.failureResultOf(authenticator.step(response), UnauthorizedLogin)
        authenticator, response = self.exchange(Credential("sherman", "windsurf"))
        wrong = self.failureResultOf(authenticator.step(response), UnauthorizedLogin)
        self.assertEqual((type(unknown.value), unknown.value.args), (type(wrong.value), wrong.value.args))

    def test_malformed_response(self) -> None:
        """Responses that are not ``principal digest`` fail as bad credentials."""
        for response in (b"", b"sherman", b"x" * 5000 + b" 00"):
            authenticator = Authenticator(self.checker)
            authenticator.start("CRAM-MD5")
            self.failureResultOf(authenticator.step(response), UnauthorizedLogin)

    def test_replay_fails(self) -> None:
        """A response captured from one exchange fails in a new one, and cannot be replayed in its own."""
        authenticator, captured = self.exchange(Credential("sherman", "kitesurf"))
        self.assertEqual(self.successResultOf(authenticator.step(captured)), "sherman")
        self.failureResultOf(authenticator.step(captured), AuthenticationError)
        for _ in range(5):
            replayed = Authenticator(self.checker, host="master.example")
            replayed.start("CRAM-MD5")
            self.failureResultOf(replayed.step(captured), UnauthorizedLogin)

    def test_single_step(self) -> None:
        """After a failed step, even the right response is refused: an exchange is single use."""
        authenticator = Authenticator(self.checker)
        challenge = authenticator.start("CRAM-MD5")
        self.failureResultOf(authenticator.step(b"sherman 00"), UnauthorizedLogin)
        right = respond(Credential("sherman", "kitesurf"), challenge)
        failure = self.failureResultOf(authenticator.step(right), AuthenticationError)
        self.assertIn("already ended", str(failure.value))

    def test_step_without_start(self) -> None:
        """A step before start fails with AuthenticationError and ends the exchange."""
        authenticator = Authenticator(self.checker)
        failure = self.failureResultOf(authenticator.step(b"sherman 00"), AuthenticationError)
        self.assertIn("not started", str(failure.value))
        self.assertRaises(AuthenticationError, authenticator.start, "CRAM-MD5")

    def test_start_twice(self) -> None:
        """A second start fails and ends the exchange."""
        authenticator = Authenticator(self.checker)
        challenge = authenticator.start("CRAM-MD5")
        self.assertRaises(AuthenticationError, authenticator.start, "CRAM-MD5")
        self.failureResultOf(authenticator.step(respond(Credential("sherman", "kitesurf"), challenge)),
                             AuthenticationError)

    def test_unsupported_mechanism(self) -> None:
        """Any other mechanism raises UnsupportedMechanism listing CRAM-MD5, and ends the exchange."""
        for mechanism in ("PLAIN", "DIGEST-MD5", "", b"GSSAPI"):
            authenticator = Authenticator(self.checker)
            error = self.assertRaises(UnsupportedMechanism, authenticator.start, mechanism)
            self.assertIsInstance(error, AuthenticationError)
            self.assertIn("supported: CRAM-MD5", str(error))
            self.failureResultOf(authenticator.step(b"sherman 00"), AuthenticationError)

    def test_mechanism_case_and_bytes(self) -> None:
        """The mechanism name is case-insensitive and may come as bytes, as SASL names do on the wire."""
        for mechanism in ("cram-md5", b"CRAM-MD5"):
            authenticator = Authenticator(self.checker)
            challenge = authenticator.start(mechanism)
            self.assertEqual(self.successResultOf(authenticator.step(
                respond(Credential("ops", "hunter2-very-secret"), challenge))), "ops")

    def test_response_must_be_bytes(self) -> None:
        """A str response is a usage error, not a silent mismatch."""
        authenticator, response = self.exchange(Credential("sherman", "kitesurf"))
        self.failureResultOf(authenticator.step(response.decode()), AuthenticationError)  # type: ignore[arg-type]

    def test_fresh_challenges(self) -> None:
        """Every exchange gets its own challenge."""
        challenges = {Authenticator(self.checker).start("CRAM-MD5") for _ in range(50)}
        self.assertEqual(len(challenges), 50)

    def test_mechanism_not_ascii(self) -> None:
        """A mechanism name that is not ASCII is an unsupported mechanism, not a crash."""
        authenticator = Authenticator(self.checker)
        self.assertRaises(UnsupportedMechanism, authenticator.start, "CRAM-MD5\u00e9".encode())

    def test_claimed_principal(self) -> None:
        """The principal a well-formed response names is kept whether or not it proved its secret (the
        throttle needs it); a malformed response names none."""
        authenticator, response = self.exchange(Credential("sherman", "wrong"))
        self.failureResultOf(authenticator.step(response), UnauthorizedLogin)
        self.assertEqual((authenticator.claimed, authenticator.principal), ("sherman", None))
        authenticator = Authenticator(self.checker)
        authenticator.start("CRAM-MD5")
        self.failureResultOf(authenticator.step(b"no-digest"), UnauthorizedLogin)
        self.assertIsNone(authenticator.claimed)

    def test_unicode_principal(self) -> None:
        """Non-ASCII principals and secrets travel as UTF-8."""
        checker = CredentialsChecker({"jürgen": "pässword"})
        authenticator = Authenticator(checker)
        response = respond(Credential("jürgen", "pässword"), authenticator.start("CRAM-MD5"))
        self.assertEqual(self.successResultOf(authenticator.step(response)), "jürgen")


class FailureThrottleTests(ClockTestCase):
    """``FailureThrottle``: back-off for repeated failures per peer."""

    def setUp(self) -> None:
        self.clock = self.makeClock()
        self.throttle = FailureThrottle(self.clock)

    def fail_times(self, key: str, times: int) -> list[float]:
        """The delays seen before each of ``times`` failures of ``key``."""
        delays = []
        for _ in range(times):
            delays.append(self.throttle.delay(key))
            self.throttle.failed(key)
        return delays

    def test_doubling(self) -> None:
        """No wait for the first failure, then 0.5 s doubling each time."""
        self.assertEqual(self.fail_times("10.0.0.1", 6), [0.0, 0.5, 1.0, 2.0, 4.0, 8.0])

    def test_cap(self) -> None:
        """The wait stops growing at 30 s, however many failures (no overflow)."""
        delays = self.fail_times("10.0.0.1", 200)
        self.assertEqual(delays[7], 30.0)
        self.assertEqual(max(delays), 30.0)
        self.assertEqual(self.throttle.delay("10.0.0.1"), 30.0)

    def test_success_resets(self) -> None:
        """A success forgets the key's failures."""
        self.fail_times("10.0.0.1", 4)
        self.throttle.succeeded("10.0.0.1")
        self.assertEqual(self.throttle.delay("10.0.0.1"), 0.0)
        self.assertEqual(len(self.throttle), 0)
        self.throttle.succeeded("never-seen")

    def test_own_success_keeps_guesses_at_others(self) -> None:
        """A success forgets the failures of its key only when they were all failures of the principal that
        succeeded (a mistyped secret); failures for another principal, for several, or for none that could
        be read stay, however often the key proves its own secret."""
        for failures, success, forgotten in ((["ops"], "ops", True), (["ops", "ops"], "ops", True),
                                            (["sherman"], "ops", False), (["ops", "sherman"], "ops", False),
                                            (["sherman", "ops"], "ops", False), ([None], "ops", False)):
            throttle = FailureThrottle(self.clock)
            for principal in failures:
                throttle.failed("10.0.0.1", principal)
            throttle.succeeded("10.0.0.1", success)
            self.assertEqual(throttle.delay("10.0.0.1") == 0.0, forgotten, (failures, success))

    def test_a_tenant_proving_its_own_secret_between_guesses_gains_nothing(self) -> None:
        """A tenant that guesses another principal's secret and logs in as itself between guesses, for a
        minute, gets no more guesses checked than one that only guesses (eight: 0.5 s doubling)."""
        def guesses(own_logins: bool) -> int:
            clock = task.Clock()
            throttle = FailureThrottle(clock)
            count = 0
            while clock.seconds() < 60:
                for principal, right in ((("mallory", True),) if own_logins else ()) + (("ops", False),):
                    wait = throttle.admit("10.0.0.1")
                    assert wait is not None
                    clock.advance(wait)
                    if wait:
                        throttle.evaluating("10.0.0.1")
                    if right:
                        throttle.succeeded("10.0.0.1", principal)
                    else:
                        throttle.failed("10.0.0.1", principal)
                        count += 1
            return count

        self.assertEqual(guesses(own_logins=False), 8)
        self.assertLessEqual(guesses(own_logins=True), 8)

    def test_slow_failures_never_lock_an_address_out(self) -> None:
        """An address whose attempts each come after its wait is over is checked at once every time: however
        many times it failed, it is never refused as having too many attempts waiting, and once its
        failures expire, nothing of it is kept."""
        throttle = FailureThrottle(self.clock, max_waiting=3)
        throttle.failed("10.0.0.1", "ops")
        for _ in range(10):
            self.clock.advance(31)
            self.assertEqual(throttle.admit("10.0.0.1"), 0.0)
            throttle.failed("10.0.0.1", "ops")
        waits = [throttle.admit("10.0.0.1") for _ in range(4)]
        self.assertEqual([wait is not None for wait in waits], [True] * 3 + [False])
        for _ in waits[:3]:
            self.clock.advance(30)
            throttle.evaluating("10.0.0.1")
            throttle.failed("10.0.0.1", "ops")
        self.clock.advance(400)
        throttle.admit("other")
        self.assertEqual((len(throttle), throttle._turns), (0, {}))
        throttle.failed("10.0.0.1", "ops")
        self.assertEqual([throttle.admit("10.0.0.1") is not None for _ in range(4)], [True] * 3 + [False])

    def test_the_line_stays_after_a_success(self) -> None:
        """Attempts waiting in line when a success forgets the key's failures keep their turns, and a new
        attempt waits behind them rather than going first."""
        throttle = FailureThrottle(self.clock, base=1.0)
        throttle.failed("10.0.0.1", "ops")
        self.assertEqual([throttle.admit("10.0.0.1"), throttle.admit("10.0.0.1")], [1.0, 2.0])
        self.clock.advance(1.0)
        throttle.evaluating("10.0.0.1")
        throttle.succeeded("10.0.0.1", "ops")
        self.assertEqual(throttle.admit("10.0.0.1"), 2.0)

    def test_exactly_max_waiting_wait(self) -> None:
        """However many attempts were checked before, at most ``max_waiting`` wait at once: the next is refused."""
        throttle = FailureThrottle(self.clock, base=1.0, cap=1.0, max_waiting=3)
        throttle.failed("10.0.0.1", "ops")
        for _ in range(3):
            self.assertEqual([throttle.admit("10.0.0.1") is not None for _ in range(4)], [True] * 3 + [False])
            for _ in range(3):
                self.clock.advance(1.0)
                throttle.evaluating("10.0.0.1")
                throttle.failed("10.0.0.1", "ops")

    def test_turns_stay_bounded_under_a_flood(self) -> None:
        """A flood of addresses failing keeps the throttle's lines bounded as well as its failures: the lines of
        addresses forgotten to make room go with them."""
        throttle = FailureThrottle(self.clock, max_entries=100)
        throttle.failed("early", "ops")
        for i in range(1000):
            throttle.failed(f"peer-{i}", "ops")
            self.clock.advance(0.01)
            self.assertLessEqual(len(throttle._turns), 101)

    def test_exactly_max_waiting_once_a_line_was_forgotten(self) -> None:
        """An address whose line was forgotten while its failures are remembered may again have exactly
        ``max_waiting`` attempts waiting."""
        throttle = FailureThrottle(self.clock, base=1.0, max_waiting=2)
        throttle.failed("k", "ops")
        throttle.failed("s", "ops")
        self.assertEqual(throttle.admit("s"), 1.0)
        throttle.succeeded("s", "ops")  # its line stays while an attempt waits in it
        self.clock.advance(1.0)
        throttle.evaluating("s")
        self.clock.advance(5.0)
        throttle.admit("other")  # forgets the lines nobody waits in, k's among them
        self.assertEqual(set(throttle._turns), set())
        self.assertEqual(throttle.admit("k"), 0.0)
        self.assertEqual([throttle.admit("k") is not None for _ in range(3)], [True, True, False])

    def test_keys_independent(self) -> None:
        """One peer's failures do not slow another."""
        self.fail_times("10.0.0.1", 5)
        self.assertEqual(self.throttle.delay("10.0.0.2"), 0.0)

    def test_expiry(self) -> None:
        """Failures are forgotten after the expiry without a new failure; a new one restarts the window."""
        self.fail_times("10.0.0.1", 3)
        self.clock.advance(299)
        self.assertEqual(self.throttle.delay("10.0.0.1"), 2.0)
        self.throttle.failed("10.0.0.1")
        self.clock.advance(299)
        self.assertEqual(self.throttle.delay("10.0.0.1"), 4.0)
        self.clock.advance(1)
        self.assertEqual(self.throttle.delay("10.0.0.1"), 0.0)
        self.assertEqual(len(self.throttle), 0)

    def test_bounded_memory(self) -> None:
        """A flood of peers never holds more than max_entries keys; the longest-idle go first."""
        throttle = FailureThrottle(self.clock, max_entries=100)
        throttle.failed("early")
        for i in range(1000):
            throttle.failed(f"peer-{i}")
            if i % 50 == 0:
                throttle.failed("early")  # failing again makes "early" the most recent
            self.assertLessEqual(len(throttle._failures), 100)
        self.assertEqual(len(throttle), 100)
        self.assertEqual(throttle.delay("peer-999"), 0.5)
        self.assertEqual(throttle.delay("peer-0"), 0.0)
        self.assertEqual(throttle.delay("early"), 30.0)

    def test_default_bounds(self) -> None:
        """A throttle made with the defaults (as the daemons' is) lets 64 attempts of a peer wait and refuses the
        65th, and remembers 10,000 peers: the 10,001st to fail makes it forget the one that failed longest ago."""
        self.throttle.failed("guesser")
        waits = [self.throttle.admit("guesser") for _ in range(65)]
        self.assertTrue(all(w is not None and w > 0 for w in waits[:64]))
        self.assertIsNone(waits[64])
        for i in range(9_999):
            self.throttle.failed(i)
        self.assertEqual((len(self.throttle), self.throttle.delay("guesser")), (10_000, 0.5))
        self.throttle.failed("one more")
        self.assertEqual((len(self.throttle), self.throttle.delay("guesser")), (10_000, 0.0))

    def test_a_single_entry(self) -> None:
        """max_entries=1 is a valid bound: the throttle remembers the last peer that failed."""
        throttle = FailureThrottle(self.clock, max_entries=1)
        throttle.failed("a")
        throttle.failed("b")
        self.assertEqual((throttle.delay("a"), throttle.delay("b")), (0.0, 0.5))

    def test_expired_entries_purged(self) -> None:
        """Expired entries are dropped from the table, not only ignored."""
        for i in range(50):
            self.throttle.failed(i)
        self.clock.advance(301)
        self.throttle.failed("new")
        self.assertEqual(len(self.throttle._failures), 1)

    def test_custom_parameters(self) -> None:
        """Base, cap and expiry are parameters."""
        throttle = FailureThrottle(self.clock, base=1.0, cap=3.0, expiry=10.0)
        delays = []
        for _ in range(4):
            delays.append(throttle.delay("k"))
            throttle.failed("k")
        self.assertEqual(delays, [0.0, 1.0, 2.0, 3.0])
        self.assertRaises(ValueError, FailureThrottle, self.clock, max_entries=0)


class PBAuthenticationTests(unittest.TestCase):
    """CRAM-MD5 over one PB connection, as attackers from one address meet it: guesses in parallel wait
    their turns, the right secret too; an attempt whose connection goes gives its turn up."""

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.throttle = FailureThrottle(self.clock, base=1.0, cap=4.0, max_waiting=2)
        self.security = Security(CredentialsChecker(SECRETS), throttle=self.throttle)
        self.failures: list[str] = []

    def connection(self, peer: str = "10.0.0.1", security: Security | None = None) -> PBAuthentication:
        return PBAuthentication(security or self.security, self.clock, lambda: peer,
                                lambda: self.failures.append(peer))

    def attempt(self, credential: Credential, peer: str = "10.0.0.1") -> tuple[PBAuthentication, defer.Deferred]:
        auth = self.connection(peer)
        return auth, auth.step(respond(credential, auth.start("CRAM-MD5")))

    def test_guesses_wait_their_turns(self) -> None:
        """After a wrong secret, the address's next attempts are checked one at a time (the right secret
        too); beyond ``max_waiting`` waiting, refused at once; other addresses are not slowed; the
        principal is bound to its connection only once proved."""
        first, d = self.attempt(Credential("ops", "guess"))
        self.failureResultOf(d, UnauthorizedLogin)
        right, d_right = self.attempt(Credential("ops", SECRETS["ops"]))
        wrong, d_wrong = self.attempt(Credential("ops", "guess2"))
        refused, d_refused = self.attempt(Credential("ops", SECRETS["ops"]))
        self.assertEqual(self.failureResultOf(d_refused, AuthenticationError).getErrorMessage(),
                         "too many authentication attempts from this address; retry later")
        other, d_other = self.attempt(Credential("sherman", "kitesurf"), peer="10.0.0.2")
        self.assertEqual(self.successResultOf(d_other), "sherman")
        self.assertNoResult(d_right)
        self.assertIsNone(right.principal)
        self.clock.advance(1.0)
        self.assertEqual((self.successResultOf(d_right), right.principal), ("ops", "ops"))
        self.assertNoResult(d_wrong)
        self.clock.advance(1.0)
        self.failureResultOf(d_wrong, UnauthorizedLogin)
        self.assertEqual((first.principal, wrong.principal), (None, None))
        self.assertEqual(self.failures, ["10.0.0.1", "10.0.0.1", "10.0.0.1"])
        self.assertEqual(self.throttle.delay("10.0.0.1"), 1.0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        # The line has emptied: two attempts may wait in it again, not one more.
        waiting = [self.attempt(Credential("ops", SECRETS["ops"]))[1] for _ in range(3)]
        self.assertEqual([d.called for d in waiting], [False, False, True])
        self.clock.advance(10)
        self.assertEqual([self.successResultOf(d) for d in waiting[:2]], ["ops", "ops"])
        self.failureResultOf(waiting[2], AuthenticationError)

    def test_guesses_count_against_the_principal_they_name(self) -> None:
        """Over PB too, a tenant proving its own secret wipes out none of its guesses at another's."""
        self.failureResultOf(self.attempt(Credential("sherman", "guess"))[1], UnauthorizedLogin)
        _, d = self.attempt(Credential("ops", SECRETS["ops"]))
        self.clock.advance(1.0)
        self.assertEqual(self.successResultOf(d), "ops")
        self.assertEqual(self.throttle.delay("10.0.0.1"), 1.0)
        _, d = self.attempt(Credential("sherman", "kitesurf"))
        self.assertNoResult(d)

    def test_a_connection_gone_while_waiting_gives_its_turn_up(self) -> None:
        """An attempt whose connection closes while it waits is never checked nor counted, leaves no timer,
        and frees its place in line."""
        self.failureResultOf(self.attempt(Credential("ops", "guess"))[1], UnauthorizedLogin)
        gone, d_gone = self.attempt(Credential("ops", SECRETS["ops"]))
        d_gone.addErrback(lambda f: f.trap(defer.CancelledError))
        gone.disconnected()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertIsNone(gone.principal)
        self.assertEqual(self.failures, ["10.0.0.1"])
        waiting = [self.attempt(Credential("ops", "guess"))[1] for _ in range(2)]
        self.assertTrue(all(not d.called for d in waiting))
        gone.disconnected()  # nothing waits on it any more: harmless
        self.clock.advance(10)
        for d in waiting:
            self.failureResultOf(d, UnauthorizedLogin)

    def test_out_of_order_and_malformed(self) -> None:
        """A step before a start is an authentication error; a response that is not bytes fails as a wrong
        one (counted); without --credentials there is nothing to start against."""
        auth = self.connection()
        self.failureResultOf(auth.step(b"ops 00"), AuthenticationError)
        auth.start("CRAM-MD5")
        self.failureResultOf(auth.step("ops 00"), UnauthorizedLogin)
        self.assertEqual(self.failures, ["10.0.0.1"])
        self.failureResultOf(auth.step(b"ops 00"), AuthenticationError)
        bare = self.connection(security=Security())
        self.assertRaises(AuthenticationError, bare.start, "CRAM-MD5")
        self.assertEqual(bare.mechanisms(), ["CRAM-MD5"])

    def test_without_a_throttle(self) -> None:
        """A policy without a throttle checks every attempt at once."""
        security = Security(CredentialsChecker(SECRETS))
        for secret, outcome in (("guess", None), ("guess", None), (SECRETS["ops"], "ops")):
            auth = self.connection(security=security)
            d = auth.step(respond(Credential("ops", secret), auth.start("CRAM-MD5")))
            if outcome is None:
                self.failureResultOf(d, UnauthorizedLogin)
            else:
                self.assertEqual(self.successResultOf(d), outcome)
