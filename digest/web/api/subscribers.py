"""/api/v1/subscribers: create (double opt-in, or consent the organisation holds), read, change, unsubscribe,
forget. The same rules as the sign-up form, the preferences page, `subscribers import` and `subscribers forget`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from digest.api_keys import ApiKey
from digest.consent import ACTIVE, Profile, SignUp, mask
from digest.errors import DigestError
from digest.signup import consent_text, request_confirmation
from digest.subscribers import clean_name, normalise_address
from digest.web.api.problems import ApiProblem
from digest.web.api.schemas import Confirmation, Forgotten, Inputs, Status, Subscriber
from digest.web.api.security import require
from digest.web.api.state import ApiState, api_state

log = logging.getLogger("digest.api")


def _value(item: Any) -> str:
    return str(getattr(item, "value", item))


def _address(email: str, *, field: str | None = "email") -> str:
    try:
        return normalise_address(email)
    except ValueError:
        if field is None:
            raise ApiProblem(404, "not-found", "No subscriber has that address.") from None
        raise ApiProblem(422, "validation", "email: not a valid e-mail address", field=field) from None


def _name(name: str | None) -> str:
    try:
        # Edge spaces go (a trailing line break too, which a pattern's `$` lets through in Python's regular
        # expressions); a break or control character inside the name is refused.
        return clean_name((name or "").strip())[:200]
    except ValueError:
        raise ApiProblem(422, "validation", "name: it has a line break or control character", field="name") from None


def _municipality(value: Any) -> str:
    text = " ".join(_value(value).split()) if value is not None else ""
    if len(text) > 100:
        raise ApiProblem(422, "validation", "municipality: at most 100 characters", field="municipality")
    return text


def _out(state: ApiState, profile: Profile, confirmation: Confirmation | None = None) -> Subscriber:
    receives = [] if profile.status != ACTIVE else list(profile.digests or state.settings.digests)
    return Subscriber(email=profile.email, name=profile.name, status=Status(profile.status),
                      municipality=profile.municipality, topics=list(profile.topics), digests=sorted(receives),
                      confirmation=confirmation)


def _pending_out(signup: SignUp, confirmation: Confirmation | None = None) -> Subscriber:
    return Subscriber(email=signup.email, name=signup.name, status=Status.pending, municipality=signup.municipality,
                      topics=list(signup.topics), digests=sorted(signup.digests), confirmation=confirmation)


def _current(state: ApiState, address: str) -> Profile | None:
    found = state.store.subscriber_by_email(address)
    return None if found is None else state.store.profile(found.id)


def _find(state: ApiState, email: str) -> Subscriber:
    address = _address(email, field=None)
    profile = _current(state, address)
    if profile is not None:
        return _out(state, profile)
    waiting = state.store.waiting_signup(address)
    if waiting is not None:
        return _pending_out(waiting.signup)
    raise ApiProblem(404, "not-found", "No subscriber has that address.")


def _location(request: Request, address: str) -> str:
    return f"{request.scope.get('root_path', '')}/v1/subscribers/{address}"


def _body(annotation: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a route's `body` parameter a model made at run time (annotations here are strings, which FastAPI would
    look up among the module's names)."""

    def set_body(route: Callable[..., Any]) -> Callable[..., Any]:
        route.__annotations__["body"] = annotation
        return route

    return set_body


def router(inputs: Inputs) -> APIRouter:
    api = APIRouter(prefix="/v1/subscribers", tags=["subscribers"])

    @api.post("", response_model=Subscriber, status_code=201, summary="Add a subscriber",
              responses={200: {"model": Subscriber, "description": "The address was there already (subscribed, or "
                               "a confirmation went out within the hour): its state, nothing sent again."},
                         201: {"description": "A new sign-up: a confirmation e-mail went out (or, with consent, a "
                               "new subscriber)."},
                         409: {"description": "With consent: the address is suppressed."},
                         503: {"description": "The confirmation e-mail could not be sent."}})
    @_body(inputs.create)
    def create(request: Request, response: Response, body: Any,
               key: Annotated[ApiKey, Depends(require("subscribers:write"))]) -> Subscriber:
        """Double opt-in by default: the address gets the same confirmation e-mail as from the sign-up form and is
        subscribed only once its owner follows the link. With `consent` (scope `subscribers:consent`) the
        organisation holds the consent, as for `digest subscribers import`: subscribed at once, the consent
        recorded with its source, words and time. Creating an address that is there already answers 200 with its
        state."""
        state = api_state(request)
        data: Any = body
        address = _address(data.email)
        digests = sorted({_value(d) for d in data.digests})
        topics = sorted({_value(t) for t in data.topics})
        name, municipality = _name(data.name), _municipality(data.municipality)
        response.headers["Location"] = _location(request, address)
        if data.consent is not None:
            if "subscribers:consent" not in key.scopes:
                raise ApiProblem(403, "forbidden", f"The key {key.name!r} does not have the scope "
                                 "'subscribers:consent' (needed to create with consent).")
            done = state.store.subscribe_with_consent(
                address, name=name, municipality=municipality, topics=topics, digests=digests,
                source=f"api:{key.name}:{data.consent.source}", consent_text=data.consent.text,
                consented_at=data.consent.at, now=state.now())
            if done is None:
                raise ApiProblem(409, "suppressed", "The address left, bounced, complained or was forgotten; only "
                                 "its owner can sign up again (create without consent).", field="email")
            profile, created = done
            log.info("API %s subscribed %s with the organisation's consent", key.name, mask(address))
            if not created:
                response.status_code = 200
            return _out(state, profile, Confirmation.not_needed)
        current = _current(state, address)
        if current is not None and current.status == ACTIVE and all(current.receives(d) for d in digests):
            response.status_code = 200
            return _out(state, current, Confirmation.not_needed)
        signup = SignUp(email=address, name=name, municipality=municipality, topics=tuple(topics),
                        digests=tuple(digests), source=f"api:{key.name}",
                        consent_text=consent_text(state.settings, digests))
        try:
            result = request_confirmation(state.settings, state.store, state.web.transport(), state.web.secret,
                                          signup, now=state.now())
        except DigestError as err:
            log.warning("API %s: confirmation e-mail to %s not sent: %s", key.name, mask(address), err)
            raise ApiProblem(503, "unavailable", "The confirmation e-mail could not be sent; try again later.",
                             headers={"Retry-After": "60"}) from None
        if not result.send:
            response.status_code = 200
        confirmation = Confirmation.sent if result.send else Confirmation.sent_within_the_hour
        if current is not None and current.status == ACTIVE:
            return _out(state, current, confirmation)
        return _pending_out(signup, confirmation)

    @api.get("/{email}", response_model=Subscriber, summary="A subscriber by address",
             responses={404: {"description": "No subscriber or sign-up has that address."}})
    def read(request: Request, email: str,
             _key: Annotated[ApiKey, Depends(require("subscribers:read"))]) -> Subscriber:
        """Status, name, municipality, topics and digests; `pending` while the confirmation link waits."""
        return _find(api_state(request), email)

    @api.patch("/{email}", response_model=Subscriber, summary="Change a subscriber's choices",
               responses={404: {"description": "No subscriber has that address."},
                          409: {"description": "The subscriber has left, or has not confirmed yet."}})
    @_body(inputs.update)
    def update(request: Request, email: str, body: Any,
               key: Annotated[ApiKey, Depends(require("subscribers:write"))]) -> Subscriber:
        """Name, municipality, topics and digests (the segments a digest may be limited to). Only the fields sent
        change. Added digests are recorded as consent, dropped ones as withdrawal, as on the preferences page."""
        state = api_state(request)
        data: Any = body
        address = _address(email, field=None)
        profile = _current(state, address)
        if profile is None:
            if state.store.waiting_signup(address) is not None:
                raise ApiProblem(409, "conflict", "The address has not confirmed its sign-up yet.")
            raise ApiProblem(404, "not-found", "No subscriber has that address.")
        if profile.status != ACTIVE:
            raise ApiProblem(409, "conflict", f"The subscriber has left ({profile.status}).")
        everything = list(state.settings.digests)
        before = list(profile.digests or everything)
        digests = before if data.digests is None else sorted({_value(d) for d in data.digests})
        topics = list(profile.topics) if data.topics is None else sorted({_value(t) for t in data.topics})
        name = profile.name if data.name is None else _name(data.name)
        municipality = (profile.municipality if "municipality" not in data.model_fields_set
                        else _municipality(data.municipality))
        added = sorted(set(digests) - set(before))
        changed = state.store.update_preferences(
            profile.subscriber_id, name=name, municipality=municipality, topics=topics, digests=digests,
            all_digests=everything, source=f"api:{key.name}", consent_text=consent_text(state.settings, added),
            now=state.now())
        if changed is None:
            raise ApiProblem(409, "conflict", "The subscriber left meanwhile.")
        return _out(state, changed)

    @api.post("/{email}/unsubscribe", response_model=Subscriber, summary="Unsubscribe from one digest or all",
              responses={404: {"description": "No subscriber has that address."}})
    @_body(inputs.unsubscribe | None)
    def unsubscribe(request: Request, email: str, key: Annotated[ApiKey, Depends(require("subscribers:write"))],
                    body: Any = None) -> Subscriber:
        """Stop one digest (`{"digest": "kultur"}`), or every digest (no body): the last one going means leaving,
        and the address goes on the suppression list. Unsubscribing again changes nothing."""
        state = api_state(request)
        data: Any = body
        address = _address(email, field=None)
        profile = _current(state, address)
        if profile is None:
            raise ApiProblem(404, "not-found", "No subscriber has that address.")
        source = f"api:{key.name}"
        digest = None if data is None or data.digest is None else _value(data.digest)
        if digest is None:
            state.store.leave(profile.subscriber_id, source=source, now=state.now())
        else:
            state.store.unsubscribe(profile.subscriber_id, digest, all_digests=list(state.settings.digests),
                                    source=source, now=state.now())
        log.info("API %s unsubscribed %s from %s", key.name, mask(address), digest or "every digest")
        after = state.store.profile(profile.subscriber_id)
        assert after is not None
        return _out(state, after)

    @api.delete("/{email}", response_model=Forgotten, summary="Forget an address (GDPR)",
                responses={404: {"description": "Not an e-mail address."}})
    def forget(request: Request, email: str,
               key: Annotated[ApiKey, Depends(require("subscribers:forget"))]) -> Forgotten:
        """Erase everything stored about the address (GDPR art. 17), as `digest subscribers forget`: only a salted
        hash stays on the suppression list, so it is never mailed again."""
        state = api_state(request)
        address = _address(email, field=None)
        erased = state.store.forget_address(address, now=state.now())
        log.info("API %s forgot %s", key.name, mask(address))
        return Forgotten(email=address, erased=erased)

    return api

