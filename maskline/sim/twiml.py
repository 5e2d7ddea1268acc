"""Reading TwiML the way Twilio acts on it: what gets dialed, said, gathered, sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree import ElementTree

from maskline import errors


class TwimlError(errors.InputError, ValueError):
    """The response is not TwiML the simulator understands."""


@dataclass(kw_only=True)
class TwimlOutcome:
    """What Twilio would do with one TwiML document."""

    said: list[str] = field(default_factory=list)
    dial_number: str | None = None
    dial_caller_id: str | None = None
    dial_attributes: dict[str, str] = field(default_factory=dict)
    # <Number url>: TwiML Twilio plays to the called party before joining.
    dial_number_url: str | None = None
    gather_action: str | None = None
    gather_digits: int | None = None
    hangup: bool = False
    # What follows a <Gather>: heard only by a caller who keys nothing.
    fallthrough: list[str] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    # Each <Message>'s action (its status callback URL), in the order of messages.
    message_actions: list[str | None] = field(default_factory=list)


def parse_twiml(text: str) -> TwimlOutcome:
    try:
        # The document comes from the server under test on loopback, and
        # ElementTree does not resolve external entities.
        root = ElementTree.fromstring(text)  # noqa: S314
    except ElementTree.ParseError:
        raise TwimlError("the answer is not XML") from None
    if root.tag != "Response":
        raise TwimlError(f"the answer's root is <{root.tag}>, not <Response>")
    outcome = TwimlOutcome()
    for verb in root:
        if verb.tag == "Say" and outcome.gather_action is not None:
            outcome.fallthrough.append((verb.text or "").strip())
        elif verb.tag == "Say":
            outcome.said.append((verb.text or "").strip())
        elif verb.tag == "Dial":
            number = verb.find("Number")
            outcome.dial_number = (
                (number.text or "").strip() if number is not None else (verb.text or "").strip()
            )
            outcome.dial_caller_id = verb.get("callerId")
            outcome.dial_number_url = number.get("url") if number is not None else None
            outcome.dial_attributes = dict(verb.attrib)
        elif verb.tag == "Gather":
            outcome.gather_action = verb.get("action")
            digits = verb.get("numDigits")
            outcome.gather_digits = int(digits) if digits else None
            outcome.said += [(say.text or "").strip() for say in verb.iter("Say")]
        elif verb.tag == "Hangup":
            outcome.hangup = True
        elif verb.tag == "Message":
            body = verb.find("Body")
            text_body = body.text if body is not None else verb.text
            outcome.messages.append(
                {"to": verb.get("to", ""), "from": verb.get("from", ""), "body": (text_body or "").strip()}
            )
            outcome.message_actions.append(verb.get("action"))
    return outcome
