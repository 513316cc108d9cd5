//! What the endpoint hands its input to: one application ([`Solo`]) or several, with the
//! gateway's choice of which one takes each new request ([`Pair`] and a [`Pick`]).

use super::{Application, DialogId, Endpoint};
use crate::message::{Method, Request, Response};
use crate::transaction::{ClientKey, ServerKey};
use crate::{Instant, Peer};

/// What an [`Endpoint`] is driven for: the applications on it, as one. It decides which
/// application each input belongs to and hands it there.
pub trait Host: Sized {
    /// Client transaction tags of all its applications.
    type Owner: Clone + std::fmt::Debug;
    /// Dialog table entries of all its applications.
    type Dialog;
    /// Events of all its applications.
    type Event;
    /// Media updates of all its applications.
    type Update;

    /// A new request; a server transaction exists under `key` (never for ACK).
    fn on_request(
        &mut self,
        ep: &mut Endpoint<Self>,
        key: ServerKey,
        request: Request,
        peer: Peer,
        now: Instant,
    );
    /// An ACK that no transaction absorbed.
    fn on_ack(&mut self, ep: &mut Endpoint<Self>, request: Request, peer: Peer, now: Instant);
    /// A response to a client transaction.
    fn on_response(
        &mut self,
        ep: &mut Endpoint<Self>,
        key: ClientKey,
        response: Response,
        owner: Self::Owner,
        now: Instant,
    );
    /// A response that matches no transaction.
    fn on_stray_response(&mut self, ep: &mut Endpoint<Self>, response: Response, now: Instant);
    /// No final response to a client transaction.
    fn on_client_timeout(
        &mut self,
        ep: &mut Endpoint<Self>,
        key: ClientKey,
        owner: Self::Owner,
        now: Instant,
    );
    /// A final response sent was never acknowledged.
    fn on_no_ack(&mut self, ep: &mut Endpoint<Self>, key: ServerKey, now: Instant);
    /// Moves what the applications produced outside their handlers into the output queue.
    fn flush(&mut self, ep: &mut Endpoint<Self>);
}

/// A [`Host`] that carries application `A` as its `I`-th: how `A`'s values travel in the
/// host's types.
pub trait Carries<A: Application, const I: usize>: Host {
    fn owner(owner: A::Owner) -> Self::Owner;
    fn dialog(dialog: A::Dialog) -> Self::Dialog;
    /// `A`'s dialog, if `dialog` is one.
    fn dialog_of(dialog: &Self::Dialog) -> Option<&A::Dialog>;
    fn event(event: A::Event) -> Self::Event;
    fn update(update: A::Update) -> Self::Update;
}

/// One application alone on the endpoint: everything is its.
pub struct Solo<A>(pub A);

impl<A: Application> Host for Solo<A> {
    type Owner = A::Owner;
    type Dialog = A::Dialog;
    type Event = A::Event;
    type Update = A::Update;

    fn on_request(
        &mut self,
        ep: &mut Endpoint<Self>,
        key: ServerKey,
        request: Request,
        peer: Peer,
        now: Instant,
    ) {
        self.0.on_request::<Self, 0>(ep, key, request, peer, now)
    }
    fn on_ack(&mut self, ep: &mut Endpoint<Self>, request: Request, peer: Peer, now: Instant) {
        self.0.on_ack::<Self, 0>(ep, request, peer, now)
    }
    fn on_response(
        &mut self,
        ep: &mut Endpoint<Self>,
        key: ClientKey,
        response: Response,
        owner: A::Owner,
        now: Instant,
    ) {
        self.0.on_response::<Self, 0>(ep, key, response, owner, now)
    }
    fn on_stray_response(&mut self, ep: &mut Endpoint<Self>, response: Response, now: Instant) {
        self.0.on_stray_response::<Self, 0>(ep, response, now)
    }
    fn on_client_timeout(
        &mut self,
        ep: &mut Endpoint<Self>,
        key: ClientKey,
        owner: A::Owner,
        now: Instant,
    ) {
        self.0.on_client_timeout::<Self, 0>(ep, key, owner, now)
    }
    fn on_no_ack(&mut self, ep: &mut Endpoint<Self>, key: ServerKey, now: Instant) {
        self.0.on_no_ack::<Self, 0>(ep, key, now)
    }
    fn flush(&mut self, ep: &mut Endpoint<Self>) {
        self.0.flush::<Self, 0>(ep)
    }
}

impl<A: Application> Carries<A, 0> for Solo<A> {
    fn owner(owner: A::Owner) -> A::Owner {
        owner
    }
    fn dialog(dialog: A::Dialog) -> A::Dialog {
        dialog
    }
    fn dialog_of(dialog: &A::Dialog) -> Option<&A::Dialog> {
        Some(dialog)
    }
    fn event(event: A::Event) -> A::Event {
        event
    }
    fn update(update: A::Update) -> A::Update {
        update
    }
}

/// Which of a [`Pair`]'s applications takes a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    First,
    Second,
}

/// The gateway's choice of application for each new request outside a dialog (an INVITE to
/// a meeting domain, a SIPREC offer…). In-dialog requests, ACKs, CANCELs and responses go to
/// the application whose dialog or transaction they belong to, without asking.
pub trait Pick {
    fn pick(&mut self, request: &Request, peer: Peer) -> Which;
}

impl<F: FnMut(&Request, Peer) -> Which> Pick for F {
    fn pick(&mut self, request: &Request, peer: Peer) -> Which {
        self(request, peer)
    }
}

/// A value of the first or the second application of a [`Pair`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Either<F, S> {
    First(F),
    Second(S),
}

/// Two applications on one endpoint; `pick` chooses for new requests. The first is also the
/// one that answers what belongs to neither (a request in an unknown dialog gets its 481).
/// Nest a `Pair` as the second to carry more.
pub struct Pair<F, S, P> {
    pub first: F,
    pub second: S,
    pub pick: P,
}

impl<F: Application, S: Application, P: Pick> Pair<F, S, P> {
    /// The application a dialog `(call_id, tag)` belongs to; the first for an unknown one.
    fn owner_of(ep: &Endpoint<Self>, call_id: Option<&str>, tag: Option<&str>) -> Which {
        let (Some(call_id), Some(tag)) = (call_id, tag) else { return Which::First };
        let id: DialogId = (call_id.to_string(), tag.to_string());
        match ep.dialogs.get(&id) {
            Some(Either::Second(_)) => Which::Second,
            _ => Which::First,
        }
    }

    fn invite_owner(&self, key: &ServerKey) -> Which {
        if self.second.has_invite(key) {
            Which::Second
        } else {
            Which::First
        }
    }
}

impl<F: Application, S: Application, P: Pick> Host for Pair<F, S, P> {
    type Owner = Either<F::Owner, S::Owner>;
    type Dialog = Either<F::Dialog, S::Dialog>;
    type Event = Either<F::Event, S::Event>;
    type Update = Either<F::Update, S::Update>;

    fn on_request(
        &mut self,
        ep: &mut Endpoint<Self>,
        key: ServerKey,
        request: Request,
        peer: Peer,
        now: Instant,
    ) {
        let to_tag = request.to().ok().and_then(|t| t.tag().map(str::to_string));
        let which = if request.method == Method::Cancel {
            match ServerKey::invite_of_cancel(&request) {
                Ok(invite) => self.invite_owner(&invite),
                Err(_) => Which::First,
            }
        } else if to_tag.is_some() {
            Self::owner_of(ep, request.call_id().ok(), to_tag.as_deref())
        } else {
            self.pick.pick(&request, peer)
        };
        match which {
            Which::First => self.first.on_request::<Self, 0>(ep, key, request, peer, now),
            Which::Second => self.second.on_request::<Self, 1>(ep, key, request, peer, now),
        }
    }

    fn on_ack(&mut self, ep: &mut Endpoint<Self>, request: Request, peer: Peer, now: Instant) {
        let to_tag = request.to().ok().and_then(|t| t.tag().map(str::to_string));
        match Self::owner_of(ep, request.call_id().ok(), to_tag.as_deref()) {
            Which::First => self.first.on_ack::<Self, 0>(ep, request, peer, now),
            Which::Second => self.second.on_ack::<Self, 1>(ep, request, peer, now),
        }
    }

    fn on_response(
        &mut self,
        ep: &mut Endpoint<Self>,
        key: ClientKey,
        response: Response,
        owner: Self::Owner,
        now: Instant,
    ) {
        match owner {
            Either::First(o) => self.first.on_response::<Self, 0>(ep, key, response, o, now),
            Either::Second(o) => self.second.on_response::<Self, 1>(ep, key, response, o, now),
        }
    }

    fn on_stray_response(&mut self, ep: &mut Endpoint<Self>, response: Response, now: Instant) {
        // voicegw's tag is in the From of the requests it sent.
        let from_tag = response.from().ok().and_then(|f| f.tag().map(str::to_string));
        match Self::owner_of(ep, response.call_id().ok(), from_tag.as_deref()) {
            Which::First => self.first.on_stray_response::<Self, 0>(ep, response, now),
            Which::Second => self.second.on_stray_response::<Self, 1>(ep, response, now),
        }
    }

    fn on_client_timeout(
        &mut self,
        ep: &mut Endpoint<Self>,
        key: ClientKey,
        owner: Self::Owner,
        now: Instant,
    ) {
        match owner {
            Either::First(o) => self.first.on_client_timeout::<Self, 0>(ep, key, o, now),
            Either::Second(o) => self.second.on_client_timeout::<Self, 1>(ep, key, o, now),
        }
    }

    fn on_no_ack(&mut self, ep: &mut Endpoint<Self>, key: ServerKey, now: Instant) {
        match self.invite_owner(&key) {
            Which::First => self.first.on_no_ack::<Self, 0>(ep, key, now),
            Which::Second => self.second.on_no_ack::<Self, 1>(ep, key, now),
        }
    }

    fn flush(&mut self, ep: &mut Endpoint<Self>) {
        self.first.flush::<Self, 0>(ep);
        self.second.flush::<Self, 1>(ep);
    }
}

impl<F: Application, S: Application, P: Pick> Carries<F, 0> for Pair<F, S, P> {
    fn owner(owner: F::Owner) -> Self::Owner {
        Either::First(owner)
    }
    fn dialog(dialog: F::Dialog) -> Self::Dialog {
        Either::First(dialog)
    }
    fn dialog_of(dialog: &Self::Dialog) -> Option<&F::Dialog> {
        match dialog {
            Either::First(d) => Some(d),
            Either::Second(_) => None,
        }
    }
    fn event(event: F::Event) -> Self::Event {
        Either::First(event)
    }
    fn update(update: F::Update) -> Self::Update {
        Either::First(update)
    }
}

impl<F: Application, S: Application, P: Pick> Carries<S, 1> for Pair<F, S, P> {
    fn owner(owner: S::Owner) -> Self::Owner {
        Either::Second(owner)
    }
    fn dialog(dialog: S::Dialog) -> Self::Dialog {
        Either::Second(dialog)
    }
    fn dialog_of(dialog: &Self::Dialog) -> Option<&S::Dialog> {
        match dialog {
            Either::Second(d) => Some(d),
            Either::First(_) => None,
        }
    }
    fn event(event: S::Event) -> Self::Event {
        Either::Second(event)
    }
    fn update(update: S::Update) -> Self::Update {
        Either::Second(update)
    }
}
