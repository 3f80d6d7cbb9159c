"""Was a request billed? One small value, decided once where the fact is known, read by everyone else.

DashScope bills per successfully generated picture. Whether a request cost money is known in two places:
  * the TRANSPORT knows whether the request body may have reached the service (`transport.py`): an error
    before the whole body was written cannot have been billed, whatever its type (a SOCKS proxy's TypeError,
    a key that does not fit an HTTP header); an answer of 4xx, 429, 500 or 503 is the service saying no;
    after the body went out, a cut or a timeout is "maybe";
  * the ANSWER knows what was made (`answers.py`, `calls.py`): a sync body, a stream frame carrying a
    picture, a SUCCEEDED task say how many (usage.image_count); a FAILED or CANCELED task made nothing; a
    task still RUNNING when the user stopped waiting, or one the service stopped knowing, may still bill.

Each of those places puts a `Billing` on what it returns or raises (`WanResult.billing`, `WanError.billing`).
The journal (which record stays open), the ledger (billed and unsure pictures), the result cache and the
node's message read it; none of them decides again. `billing_of` is the one fallback, for an exception
nobody tagged: it asks the transport's `Sent` mark whether the body may have reached the service.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Billing:
    #: pictures the service says (or showed) it made: billed
    pictures: int = 0
    #: more may have been made and billed without our knowing (counted at the most the request could bill)
    unsure: bool = False
    #: nothing more will be learned about this request (False: a task that may still finish and deliver)
    final: bool = True
    #: in a few words, why: for the ledger's note and the log
    why: str = ""

    @property
    def verdict(self) -> str:
        """"yes", "maybe" or "no", as the node's `info` and the recent-results list say it."""
        if self.pictures:
            return "yes"
        return "maybe" if self.unsure else "no"


NOT_BILLED = Billing(why="not billed")


def maybe(why: str, *, final: bool = True, pictures: int = 0) -> Billing:
    return Billing(pictures=pictures, unsure=True, final=final, why=why)


def made(pictures: int, why: str = "the service made them") -> Billing:
    return Billing(pictures=max(0, int(pictures)), why=why)


class Sent:
    """The transport's mark on one billable call: set once the request body may have reached the service
    (the whole body was written, or an answer came back)."""

    __slots__ = ("reached",)

    def __init__(self) -> None:
        self.reached = False


def tag(exc: BaseException, billing: Billing) -> BaseException:
    """Put `billing` on `exc` unless the raiser already decided. Any exception type: a bug in a proxy
    library raised before anything was sent must still count as not billed."""
    if getattr(exc, "billing", None) is None:
        try:
            exc.billing = billing  # type: ignore[attr-defined]
        except (AttributeError, TypeError):  # an exception type with __slots__: nothing to do but guess below
            pass
    return exc


def billing_of(exc: BaseException, sent: Sent | None = None) -> Billing:
    """What `exc` says was billed; for an exception nobody tagged, whether the body may have been sent."""
    decided = getattr(exc, "billing", None)
    if isinstance(decided, Billing):
        return decided
    if sent is not None and not sent.reached:
        return Billing(why=f"{type(exc).__name__} before the request could reach the service")
    return maybe(f"{type(exc).__name__} after the request was sent")
