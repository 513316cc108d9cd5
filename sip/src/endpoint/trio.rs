//! Three applications on one endpoint: a [`Pair`](super::Pair)'s two, whose new requests the
//! gateway's [`Pick`] shares out, and a third that takes no new requests — it only sends them
//! (a recording client forking calls to a recorder): what belongs to it (responses to its
//! transactions, requests and stray responses in its dialogs) reaches it, nothing else.

use super::host::{Carries, Host, Pick, Which};
use super::{Application, DialogId, Endpoint};
use crate::message::{Method, Request, Response};
use crate::transaction::{ClientKey, ServerKey};
use crate::{Instant, Peer};

/// A value of one of a [`Trio`]'s applications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneOf3<F, S, T> {
    First(F),
    Second(S),
    Third(T),
}

/// See the module documentation. The first answers what belongs to none of them.
pub struct Trio<F, S, T, P> {
    pub first: F,
    pub second: S,
    pub third: T,
    pub pick: P,
}

/// Which of the three an input belongs to.
enum Owner3 {
    First,
    Second,
    Third,
}

impl<F: Application, S: Application, T: Application, P: Pick> Trio<F, S, T, P> {
    /// The application a dialog `(call_id, tag)` belongs to; the first for an unknown one.
    fn owner_of(ep: &Endpoint<Self>, call_id: Option<&str>, tag: Option<&str>) -> Owner3 {
        let (Some(call_id), Some(tag)) = (call_id, tag) else { return Owner3::First };
        let id: DialogId = (call_id.to_string(), tag.to_string());
        match ep.dialogs.get(&id) {
            Some(OneOf3::Second(_)) => Owner3::Second,
            Some(OneOf3::Third(_)) => Owner3::Third,
            _ => Owner3::First,
        }
    }

    /// The INVITE server transactions are the first's or the second's (the third takes none).
    fn invite_owner(&self, key: &ServerKey) -> Owner3 {
        if self.second.has_invite(key) {
            Owner3::Second
        } else {
            Owner3::First
        }
    }
}

impl<F: Application, S: Application, T: Application, P: Pick> Host for Trio<F, S, T, P> {
    type Owner = OneOf3<F::Owner, S::Owner, T::Owner>;
    type Dialog = OneOf3<F::Dialog, S::Dialog, T::Dialog>;
    type Event = OneOf3<F::Event, S::Event, T::Event>;
    type Update = OneOf3<F::Update, S::Update, T::Update>;

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
                Err(_) => Owner3::First,
            }
        } else if to_tag.is_some() {
            Self::owner_of(ep, request.call_id().ok(), to_tag.as_deref())
        } else {
            match self.pick.pick(&request, peer) {
                Which::First => Owner3::First,
                Which::Second => Owner3::Second,
            }
        };
        match which {
            Owner3::First => self.first.on_request::<Self, 0>(ep, key, request, peer, now),
            Owner3::Second => self.second.on_request::<Self, 1>(ep, key, request, peer, now),
            Owner3::Third => self.third.on_request::<Self, 2>(ep, key, request, peer, now),
        }
    }

    fn on_ack(&mut self, ep: &mut Endpoint<Self>, request: Request, peer: Peer, now: Instant) {
        let to_tag = request.to().ok().and_then(|t| t.tag().map(str::to_string));
        match Self::owner_of(ep, request.call_id().ok(), to_tag.as_deref()) {
            Owner3::First => self.first.on_ack::<Self, 0>(ep, request, peer, now),
            Owner3::Second => self.second.on_ack::<Self, 1>(ep, request, peer, now),
            Owner3::Third => self.third.on_ack::<Self, 2>(ep, request, peer, now),
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
            OneOf3::First(o) => self.first.on_response::<Self, 0>(ep, key, response, o, now),
            OneOf3::Second(o) => self.second.on_response::<Self, 1>(ep, key, response, o, now),
            OneOf3::Third(o) => self.third.on_response::<Self, 2>(ep, key, response, o, now),
        }
    }

    fn on_stray_response(&mut self, ep: &mut Endpoint<Self>, response: Response, now: Instant) {
        // voicegw's tag is in the From of the requests it sent.
        let from_tag = response.from().ok().and_then(|f| f.tag().map(str::to_string));
        match Self::owner_of(ep, response.call_id().ok(), from_tag.as_deref()) {
            Owner3::First => self.first.on_stray_response::<Self, 0>(ep, response, now),
            Owner3::Second => self.second.on_stray_response::<Self, 1>(ep, response, now),
            Owner3::Third => self.third.on_stray_response::<Self, 2>(ep, response, now),
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
            OneOf3::First(o) => self.first.on_client_timeout::<Self, 0>(ep, key, o, now),
            OneOf3::Second(o) => self.second.on_client_timeout::<Self, 1>(ep, key, o, now),
            OneOf3::Third(o) => self.third.on_client_timeout::<Self, 2>(ep, key, o, now),
        }
    }

    fn on_no_ack(&mut self, ep: &mut Endpoint<Self>, key: ServerKey, now: Instant) {
        match self.invite_owner(&key) {
            Owner3::Second => self.second.on_no_ack::<Self, 1>(ep, key, now),
            _ => self.first.on_no_ack::<Self, 0>(ep, key, now),
        }
    }

    fn flush(&mut self, ep: &mut Endpoint<Self>) {
        self.first.flush::<Self, 0>(ep);
        self.second.flush::<Self, 1>(ep);
        self.third.flush::<Self, 2>(ep);
    }
}

/// How each of a [`Trio`]'s applications travels in its types: the place `I` of the
/// application and the variant of [`OneOf3`] are the same.
macro_rules! carries {
    ($app:ident, $i:literal, $variant:ident) => {
        impl<F: Application, S: Application, T: Application, P: Pick> Carries<$app, $i>
            for Trio<F, S, T, P>
        {
            fn owner(owner: $app::Owner) -> Self::Owner {
                OneOf3::$variant(owner)
            }
            fn dialog(dialog: $app::Dialog) -> Self::Dialog {
                OneOf3::$variant(dialog)
            }
            fn dialog_of(dialog: &Self::Dialog) -> Option<&$app::Dialog> {
                match dialog {
                    OneOf3::$variant(d) => Some(d),
                    _ => None,
                }
            }
            fn event(event: $app::Event) -> Self::Event {
                OneOf3::$variant(event)
            }
            fn update(update: $app::Update) -> Self::Update {
                OneOf3::$variant(update)
            }
        }
    };
}

carries!(F, 0, First);
carries!(S, 1, Second);
carries!(T, 2, Third);
