use thiserror::Error;

/// Why a SIP message, header or URI could not be parsed. The text is suitable for a `Warning`
/// header of a 400 response.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("message is empty")]
    Empty,
    #[error("no blank line ends the header section")]
    Incomplete,
    #[error("header section is not valid UTF-8")]
    NotUtf8,
    #[error("malformed start line: {0}")]
    StartLine(String),
    #[error("unsupported SIP version: {0}")]
    Version(String),
    #[error("malformed header line: {0}")]
    HeaderLine(String),
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("malformed {header} header: {value}")]
    Header { header: &'static str, value: String },
    #[error("malformed URI: {0}")]
    Uri(String),
    #[error("Content-Length {declared} exceeds the {actual} body bytes received")]
    BodyTruncated { declared: usize, actual: usize },
    #[error("message exceeds {0} bytes")]
    TooLarge(usize),
    #[error("more than {0} header lines")]
    TooManyHeaders(usize),
    #[error("control character in header line: {0}")]
    ControlCharacter(String),
    #[error("header too long ({0}…): more than {1} bytes")]
    HeaderTooLong(String, usize),
    #[error("more than one {0} header")]
    DuplicateHeader(&'static str),
    #[error("malformed multipart body: {0}")]
    Multipart(String),
}

impl ParseError {
    pub(crate) fn header(header: &'static str, value: &str) -> ParseError {
        ParseError::Header { header, value: value.chars().take(80).collect() }
    }
}
