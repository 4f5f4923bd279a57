//! Byte-level helpers on DNS messages for the forwarding path, where parsing the whole
//! message would only cost time: header fields, the question section, synthesized errors.

/// RCODE FORMERR.
pub const RCODE_FORMERR: u8 = 1;
/// RCODE SERVFAIL.
pub const RCODE_SERVFAIL: u8 = 2;
/// RCODE REFUSED.
pub const RCODE_REFUSED: u8 = 5;

const HEADER: usize = 12;

/// The longest name on the wire, length octets and root included (RFC 1035 3.1).
const MAX_NAME: usize = 255;

/// End offset of the (single) question section, `None` if the message does not hold exactly
/// one well-formed question. The question name is the first name in a message, so it cannot
/// be compressed; a name over 255 octets is not well-formed (echoing it back in an error
/// response would make a message resolvers reject).
pub fn question_end(msg: &[u8]) -> Option<usize> {
    if msg.len() < HEADER || u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return None;
    }
    let mut pos = HEADER;
    loop {
        let len = usize::from(*msg.get(pos)?);
        if len == 0 {
            pos += 1;
            break;
        }
        if len & 0xC0 != 0 {
            return None;
        }
        pos += 1 + len;
        if pos - HEADER >= MAX_NAME {
            return None;
        }
    }
    let end = pos + 4;
    (end <= msg.len()).then_some(end)
}

/// The response code (low 4 bits).
pub fn rcode(msg: &[u8]) -> u8 {
    msg.get(3).map_or(0, |b| b & 0x0F)
}

/// Whether the TC bit is set.
pub fn truncated(msg: &[u8]) -> bool {
    msg.get(2).is_some_and(|b| b & 0x02 != 0)
}

/// Whether `resp` is a response with id `id` to the question of `query` (ending at `qend`).
pub fn answers(resp: &[u8], query: &[u8], qend: usize, id: u16) -> bool {
    if resp.len() < qend || qend < HEADER + 5 || query.len() < qend {
        return false;
    }
    let is_response = resp[2] & 0x80 != 0;
    let same_id = u16::from_be_bytes([resp[0], resp[1]]) == id;
    let one_question = u16::from_be_bytes([resp[4], resp[5]]) == 1;
    let name_end = qend - 4;
    is_response
        && same_id
        && one_question
        && resp[HEADER..name_end].eq_ignore_ascii_case(&query[HEADER..name_end])
        && resp[name_end..qend] == query[name_end..qend]
}

/// An error response to `query` carrying its question; empty if the query is too short to
/// answer at all (then nothing is sent).
pub fn error_response(query: &[u8], rcode: u8) -> Vec<u8> {
    if query.len() < HEADER {
        return Vec::new();
    }
    let qend = question_end(query);
    let mut out = Vec::with_capacity(qend.unwrap_or(HEADER));
    out.extend_from_slice(&query[..2]);
    out.push(0x80 | (query[2] & 0x79)); // QR, opcode, RD
    out.push(0x80 | (rcode & 0x0F)); // RA
    out.extend_from_slice(&[0, u8::from(qend.is_some()), 0, 0, 0, 0, 0, 0]);
    if let Some(end) = qend {
        out.extend_from_slice(&query[HEADER..end]);
    }
    out
}

/// `resp` cut down to its header and question with TC set: what a UDP client gets when the
/// full answer does not fit its buffer (it then asks again over TCP).
pub fn truncate_response(resp: &[u8]) -> Vec<u8> {
    if resp.len() < HEADER {
        return Vec::new();
    }
    let qend = question_end(resp);
    let mut out = Vec::with_capacity(qend.unwrap_or(HEADER));
    out.extend_from_slice(&resp[..4]);
    out[2] |= 0x02;
    out.extend_from_slice(&[0, u8::from(qend.is_some()), 0, 0, 0, 0, 0, 0]);
    if let Some(end) = qend {
        out.extend_from_slice(&resp[HEADER..end]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // id 0x1234, RD, one question: "Ab.c." A IN
    const Q: [u8; 23] = [
        0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 2, b'A', b'b', 1, b'c', 0, 0, 1, 0, 1, 0xFF,
    ];

    #[test]
    fn question_and_matching() {
        let q = &Q[..22];
        assert_eq!(question_end(q), Some(22));
        assert_eq!(question_end(&Q[..20]), None);
        let mut r = q.to_vec();
        r[2] |= 0x80;
        r[13] = b'a';
        assert!(answers(&r, q, 22, 0x1234));
        assert!(!answers(&r, q, 22, 0x1235));
        r[21] = 5;
        assert!(!answers(&r, q, 22, 0x1234), "class differs");
    }

    /// A question whose name is `labels` labels of `len` bytes each.
    fn long_question(labels: usize, len: u8) -> Vec<u8> {
        let mut q = vec![0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..labels {
            q.push(len);
            q.extend(std::iter::repeat_n(b'a', usize::from(len)));
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    }

    #[test]
    fn names_over_255_octets_are_not_well_formed() {
        // A label of n bytes takes n + 1 octets; the root adds 1.
        let max = long_question(127, 1); // 255 octets: the longest name allowed
        assert_eq!(question_end(&max), Some(max.len()));
        assert_eq!(question_end(&long_question(128, 1)), None); // 257 octets
        let too_long = long_question(5, 63); // 321 octets
        assert_eq!(question_end(&too_long), None);
        // Found by the dns_wire fuzz target: the FORMERR answer echoed a name over 255
        // octets, a message resolvers reject. Now it carries the header only.
        let e = error_response(&too_long, RCODE_FORMERR);
        assert_eq!(e.len(), 12);
        assert_eq!(rcode(&e), RCODE_FORMERR);
        assert_eq!(&e[4..6], &[0, 0]);
    }

    #[test]
    fn synthesized_errors() {
        let e = error_response(&Q[..22], RCODE_SERVFAIL);
        assert_eq!(e.len(), 22);
        assert_eq!(rcode(&e), RCODE_SERVFAIL);
        assert_eq!(e[2], 0x81);
        assert!(error_response(&Q[..5], RCODE_SERVFAIL).is_empty());
        let t = truncate_response(&e);
        assert!(truncated(&t));
        assert_eq!(t.len(), 22);
    }
}
