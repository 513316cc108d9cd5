//! Phone numbers: the country of an E.164 number from the numbering plan (Google's
//! libphonenumber metadata, through the `phonenumber` crate; no hand-made table), and the
//! emergency dial strings.

/// The ISO 3166-1 alpha-2 country an E.164 number belongs to, if the numbering plan knows it.
pub fn country_of(e164: &str) -> Option<String> {
    let n = phonenumber::parse(None, e164).ok()?;
    n.country().id().map(|id| id.as_ref().to_string())
}

/// The user part of a URI without its parameters (`+1206…;npdi` → `+1206…`): the number a
/// call is from or to.
pub fn user_of(uri: &sip::Uri) -> String {
    uri.user.as_deref().unwrap_or("").split(';').next().unwrap_or("").to_string()
}

/// The country of a caller or callee as the user part of its URI: E.164 numbers only
/// (`anonymous`, extensions and short codes have none).
pub fn country_of_user(user: &str) -> Option<String> {
    crate::config::is_e164(user).then(|| country_of(user)).flatten()
}

/// Loads the numbering plan (it is parsed on first use; better at start than on a call).
pub fn warm_up() {
    let _ = country_of("+12065550100");
}

/// An emergency dial string on termination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emergency {
    /// `911`: sent to the DNIS `EmergencyPhoneNumber`.
    Call,
    /// `933` (the US address test number): sent to the DNIS `TestPhoneNumber`.
    Test,
}

/// Whether the dialled user part is an emergency dial string.
pub fn emergency(dialled: &str) -> Option<Emergency> {
    match dialled {
        "911" => Some(Emergency::Call),
        "933" => Some(Emergency::Test),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_come_from_the_numbering_plan() {
        assert_eq!(country_of("+12065550100").as_deref(), Some("US"));
        assert_eq!(country_of("+15145550100").as_deref(), Some("CA"));
        assert_eq!(country_of("+442079460000").as_deref(), Some("GB"));
        assert_eq!(country_of("+4915112345678").as_deref(), Some("DE"));
        assert_eq!(country_of("+999123456"), None);
        assert_eq!(emergency("911"), Some(Emergency::Call));
        assert_eq!(emergency("933"), Some(Emergency::Test));
        assert_eq!(emergency("+12065550100"), None);
    }
}
