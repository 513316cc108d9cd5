//! What the endpoint hands its input to: one application ([`Solo`]) or several, with the
//! gateway's choice of which one takes each new request (a [`Pick`]; the hosts of two, three
//! and four applications are in [`super::many`]).

use super::{Application, Endpoint};
use crate::message::{Request, Response};
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

/// Which of a host's applications takes a request (one a host does not have is its first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    First,
    Second,
    Third,
    Fourth,
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
