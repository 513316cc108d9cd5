use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};

use super::{Headers, Request, Response};

fn write_headers(out: &mut String, headers: &Headers, body_len: usize) {
    for h in headers.iter() {
        let _ = write!(out, "{}: {}\r\n", h.name, h.value);
    }
    let _ = write!(out, "Content-Length: {body_len}\r\n\r\n");
}

fn finish(head: String, body: &Bytes) -> Bytes {
    let mut buf = BytesMut::with_capacity(head.len() + body.len());
    buf.put_slice(head.as_bytes());
    buf.put_slice(body);
    buf.freeze()
}

impl Request {
    /// Prints the request with a Content-Length that matches the body.
    pub fn to_bytes(&self) -> Bytes {
        let mut head = String::with_capacity(512);
        let _ = write!(head, "{} {} SIP/2.0\r\n", self.method, self.uri);
        write_headers(&mut head, &self.headers, self.body.len());
        finish(head, &self.body)
    }
}

impl Response {
    /// Prints the response with a Content-Length that matches the body.
    pub fn to_bytes(&self) -> Bytes {
        let mut head = String::with_capacity(512);
        let _ = write!(head, "SIP/2.0 {} {}\r\n", self.status, self.reason);
        write_headers(&mut head, &self.headers, self.body.len());
        finish(head, &self.body)
    }
}
