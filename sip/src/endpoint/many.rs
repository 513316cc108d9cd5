//! Hosts of two, three and four applications on one endpoint ([`Pair`], [`Trio`],
//! [`Quartet`]): the gateway's [`Pick`] chooses which one takes each new request outside a
//! dialog; in-dialog requests, ACKs, CANCELs, responses and timeouts go to the application
//! whose dialog or transaction they are, without asking. The first answers what belongs to
//! none of them (a request in an unknown dialog gets its 481). An application that only
//! sends requests (a recording client) is one the pick never names.

use super::host::{Carries, Host, Pick, Which};
use super::{Application, DialogId, Endpoint};
use crate::message::{Method, Request, Response};
use crate::transaction::{ClientKey, ServerKey};
use crate::{Instant, Peer};

/// How application `$app` travels in `$host`'s types: the place `$i` of the application and
/// the variant of `$value` are the same.
macro_rules! carries {
    ($host:ident, $value:ident, [$($g:ident),+], $app:ident, $i:literal, $variant:ident) => {
        impl<$($g: Application,)+ P: Pick> Carries<$app, $i> for $host<$($g,)+ P> {
            fn owner(owner: $app::Owner) -> Self::Owner {
                $value::$variant(owner)
            }
            fn dialog(dialog: $app::Dialog) -> Self::Dialog {
                $value::$variant(dialog)
            }
            fn dialog_of(dialog: &Self::Dialog) -> Option<&$app::Dialog> {
                match dialog {
                    $value::$variant(d) => Some(d),
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
            fn event(event: $app::Event) -> Self::Event {
                $value::$variant(event)
            }
            fn update(update: $app::Update) -> Self::Update {
                $value::$variant(update)
            }
        }
    };
}

/// A host of the applications listed (the first's field is `first`), and the enum its
/// values travel in.
macro_rules! host {
    (
        $(#[$doc:meta])* $host:ident,
        $(#[$vdoc:meta])* $value:ident,
        $generics:tt,
        [$(($app:ident, $field:ident, $i:literal, $variant:ident)),+]
    ) => {
        $(#[$vdoc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $value<$($app),+> {
            $($variant($app)),+
        }

        $(#[$doc])*
        pub struct $host<$($app),+, P> {
            $(pub $field: $app,)+
            pub pick: P,
        }

        impl<$($app: Application),+, P: Pick> $host<$($app),+, P> {
            /// The application a dialog `(call_id, tag)` belongs to; the first for an
            /// unknown one.
            fn owner_of(ep: &Endpoint<Self>, call_id: Option<&str>, tag: Option<&str>) -> Which {
                let (Some(call_id), Some(tag)) = (call_id, tag) else { return Which::First };
                let id: DialogId = (call_id.to_string(), tag.to_string());
                match ep.dialogs.get(&id) {
                    $(Some($value::$variant(_)) => Which::$variant,)+
                    None => Which::First,
                }
            }

            /// The application whose INVITE server transaction `key` is; the first if none.
            fn invite_owner(&self, key: &ServerKey) -> Which {
                $(if self.$field.has_invite(key) {
                    return Which::$variant;
                })+
                Which::First
            }
        }

        impl<$($app: Application),+, P: Pick> Host for $host<$($app),+, P> {
            type Owner = $value<$($app::Owner),+>;
            type Dialog = $value<$($app::Dialog),+>;
            type Event = $value<$($app::Event),+>;
            type Update = $value<$($app::Update),+>;

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
                    $(Which::$variant => {
                        self.$field.on_request::<Self, $i>(ep, key, request, peer, now)
                    })+
                    #[allow(unreachable_patterns)]
                    _ => self.first.on_request::<Self, 0>(ep, key, request, peer, now),
                }
            }

            fn on_ack(&mut self, ep: &mut Endpoint<Self>, request: Request, peer: Peer, now: Instant) {
                let to_tag = request.to().ok().and_then(|t| t.tag().map(str::to_string));
                match Self::owner_of(ep, request.call_id().ok(), to_tag.as_deref()) {
                    $(Which::$variant => self.$field.on_ack::<Self, $i>(ep, request, peer, now),)+
                    #[allow(unreachable_patterns)]
                    _ => self.first.on_ack::<Self, 0>(ep, request, peer, now),
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
                    $($value::$variant(o) => {
                        self.$field.on_response::<Self, $i>(ep, key, response, o, now)
                    })+
                }
            }

            fn on_stray_response(&mut self, ep: &mut Endpoint<Self>, response: Response, now: Instant) {
                // voicegw's tag is in the From of the requests it sent.
                let from_tag = response.from().ok().and_then(|f| f.tag().map(str::to_string));
                match Self::owner_of(ep, response.call_id().ok(), from_tag.as_deref()) {
                    $(Which::$variant => self.$field.on_stray_response::<Self, $i>(ep, response, now),)+
                    #[allow(unreachable_patterns)]
                    _ => self.first.on_stray_response::<Self, 0>(ep, response, now),
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
                    $($value::$variant(o) => {
                        self.$field.on_client_timeout::<Self, $i>(ep, key, o, now)
                    })+
                }
            }

            fn on_no_ack(&mut self, ep: &mut Endpoint<Self>, key: ServerKey, now: Instant) {
                match self.invite_owner(&key) {
                    $(Which::$variant => self.$field.on_no_ack::<Self, $i>(ep, key, now),)+
                    #[allow(unreachable_patterns)]
                    _ => self.first.on_no_ack::<Self, 0>(ep, key, now),
                }
            }

            fn flush(&mut self, ep: &mut Endpoint<Self>) {
                $(self.$field.flush::<Self, $i>(ep);)+
            }
        }

        $(carries!($host, $value, $generics, $app, $i, $variant);)+
    };
}

host!(
    /// Two applications on one endpoint; `pick` chooses for new requests.
    Pair,
    /// A value of the first or the second application of a [`Pair`].
    Either,
    [F, S],
    [(F, first, 0, First), (S, second, 1, Second)]
);

host!(
    /// Three applications on one endpoint; `pick` chooses for new requests.
    Trio,
    /// A value of one of a [`Trio`]'s applications.
    OneOf3,
    [F, S, T],
    [(F, first, 0, First), (S, second, 1, Second), (T, third, 2, Third)]
);

host!(
    /// Four applications on one endpoint; `pick` chooses for new requests.
    Quartet,
    /// A value of one of a [`Quartet`]'s applications.
    OneOf4,
    [F, S, T, U],
    [(F, first, 0, First), (S, second, 1, Second), (T, third, 2, Third), (U, fourth, 3, Fourth)]
);
