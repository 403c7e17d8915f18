//! The egress rules of `[network]` (`plan::network::EgressRule`) lowered
//! to the netlink messages that install them: one nfnetlink batch that
//! creates table `inet hutch` with chain `egress` on the output hook and a
//! rule per planned rule, which the child sends to the kernel in its
//! network namespace while it still holds CAP_NET_ADMIN there
//! (`child::netfilter`), before it confines itself. Everything is encoded
//! here, before clone: the child only sends the bytes and reads the
//! acknowledgements.
//!
//! The encoding is nf_tables' own (linux/netfilter/nf_tables.h): each rule
//! is a list of expressions that load a field into register 1 (`meta`,
//! `payload`), mask it (`bitwise`), compare it (`cmp`), and end in a
//! verdict (`immediate` accept, or `reject` with ICMP port unreachable,
//! which a TCP connect reports as "connection refused").

use std::ffi::CString;
use std::net::IpAddr;

use crate::plan::network::{EgressRule, Proto, Target, Verdict};

const NETLINK_HEADER: usize = 16;
const NFGENMSG: usize = 4;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;

const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_ACCEPT: u32 = 1;

const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NLA_F_NESTED: u16 = 0x8000;

const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFT_META_OIF: u32 = 5;
const NFT_META_NFPROTO: u32 = 15;
const NFT_META_L4PROTO: u32 = 16;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_GTE: u32 = 5;
const NFT_CMP_LTE: u32 = 3;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_REJECT_TYPE: u16 = 1;
const NFTA_REJECT_ICMP_CODE: u16 = 2;
const NFT_REJECT_ICMPX_UNREACH: u32 = 2;
const NFT_REJECT_ICMPX_PORT_UNREACH: u8 = 1;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
/// The loopback interface's index, the same in every network namespace.
const LOOPBACK_IFINDEX: u32 = 1;

/// The table and chain hutch installs.
pub const TABLE: &str = "hutch";
pub const CHAIN: &str = "egress";

/// The batch that installs a sandbox's egress rules, and what each of its
/// acknowledged messages is, for the child's report of a refusal.
#[derive(Debug)]
pub struct EgressBatch {
    /// The netlink messages, back to back, ready for one `sendmsg`.
    pub bytes: Vec<u8>,
    /// Per acknowledged message, by sequence number: what it installs.
    pub what: Vec<CString>,
}

/// A netlink message under construction; attributes nest by offset.
struct Message {
    buf: Vec<u8>,
}

impl Message {
    fn new(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> Message {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set at the end
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        buf.push(family);
        buf.push(0); // NFNETLINK_V0
        buf.extend_from_slice(&res_id.to_be_bytes());
        debug_assert_eq!(buf.len(), NETLINK_HEADER + NFGENMSG);
        Message { buf }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn attr(&mut self, kind: u16, data: &[u8]) {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn str(&mut self, kind: u16, s: &str) {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(kind, &data);
    }

    fn u32(&mut self, kind: u16, v: u32) {
        self.attr(kind, &v.to_be_bytes());
    }

    /// Opens a nested attribute; [`Message::end`] closes it.
    fn begin(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self, out: &mut Vec<u8>) {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&self.buf);
    }
}

/// One expression of a rule.
enum Expr {
    /// `meta KEY` into register 1.
    Meta(u32),
    /// `LEN` bytes at `OFFSET` of header `BASE` into register 1.
    Payload {
        base: u32,
        offset: u32,
        len: u32,
    },
    /// Register 1 &= mask.
    Mask(Vec<u8>),
    /// Register 1 OP data.
    Cmp(u32, Vec<u8>),
    Accept,
    Reject,
}

impl Expr {
    fn encode(&self, m: &mut Message) {
        let elem = m.begin(NFTA_LIST_ELEM);
        let name = match self {
            Expr::Meta(_) => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Mask(_) => "bitwise",
            Expr::Cmp(..) => "cmp",
            Expr::Accept => "immediate",
            Expr::Reject => "reject",
        };
        m.str(NFTA_EXPR_NAME, name);
        let data = m.begin(NFTA_EXPR_DATA);
        match self {
            Expr::Meta(key) => {
                m.u32(NFTA_META_KEY, *key);
                m.u32(NFTA_META_DREG, NFT_REG_1);
            }
            Expr::Payload { base, offset, len } => {
                m.u32(NFTA_PAYLOAD_DREG, NFT_REG_1);
                m.u32(NFTA_PAYLOAD_BASE, *base);
                m.u32(NFTA_PAYLOAD_OFFSET, *offset);
                m.u32(NFTA_PAYLOAD_LEN, *len);
            }
            Expr::Mask(mask) => {
                m.u32(NFTA_BITWISE_SREG, NFT_REG_1);
                m.u32(NFTA_BITWISE_DREG, NFT_REG_1);
                m.u32(NFTA_BITWISE_LEN, mask.len() as u32);
                let at = m.begin(NFTA_BITWISE_MASK);
                m.attr(NFTA_DATA_VALUE, mask);
                m.end(at);
                let at = m.begin(NFTA_BITWISE_XOR);
                m.attr(NFTA_DATA_VALUE, &vec![0; mask.len()]);
                m.end(at);
            }
            Expr::Cmp(op, value) => {
                m.u32(NFTA_CMP_SREG, NFT_REG_1);
                m.u32(NFTA_CMP_OP, *op);
                let at = m.begin(NFTA_CMP_DATA);
                m.attr(NFTA_DATA_VALUE, value);
                m.end(at);
            }
            Expr::Accept => {
                m.u32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
                let at = m.begin(NFTA_IMMEDIATE_DATA);
                let verdict = m.begin(NFTA_DATA_VERDICT);
                m.u32(NFTA_VERDICT_CODE, NF_ACCEPT);
                m.end(verdict);
                m.end(at);
            }
            Expr::Reject => {
                m.u32(NFTA_REJECT_TYPE, NFT_REJECT_ICMPX_UNREACH);
                m.attr(NFTA_REJECT_ICMP_CODE, &[NFT_REJECT_ICMPX_PORT_UNREACH]);
            }
        }
        m.end(data);
        m.end(elem);
    }
}

/// The expressions that match `net` (prefix 0: only the family).
fn match_address(address: IpAddr, prefix: u8) -> Vec<Expr> {
    let (family, offset, bytes) = match address {
        IpAddr::V4(a) => (NFPROTO_IPV4, 16, a.octets().to_vec()),
        IpAddr::V6(a) => (NFPROTO_IPV6, 24, a.octets().to_vec()),
    };
    let mut out = vec![
        Expr::Meta(NFT_META_NFPROTO),
        Expr::Cmp(NFT_CMP_EQ, vec![family]),
    ];
    if prefix == 0 {
        return out;
    }
    out.push(Expr::Payload {
        base: NFT_PAYLOAD_NETWORK_HEADER,
        offset,
        len: bytes.len() as u32,
    });
    let full = bytes.len() * 8;
    if usize::from(prefix) < full {
        let mask: Vec<u8> = (0..bytes.len())
            .map(|i| {
                let bits = usize::from(prefix).saturating_sub(i * 8).min(8);
                (0xffu16 << (8 - bits)) as u8
            })
            .collect();
        out.push(Expr::Mask(mask));
    }
    out.push(Expr::Cmp(NFT_CMP_EQ, bytes));
    out
}

/// The expressions that match the transport protocol and destination
/// ports.
fn match_ports(proto: Option<Proto>, ports: Option<(u16, u16)>) -> Vec<Expr> {
    let mut out = Vec::new();
    if let Some(p) = proto {
        let number = match p {
            Proto::Tcp => IPPROTO_TCP,
            Proto::Udp => IPPROTO_UDP,
        };
        out.push(Expr::Meta(NFT_META_L4PROTO));
        out.push(Expr::Cmp(NFT_CMP_EQ, vec![number]));
    }
    if let Some((lo, hi)) = ports {
        out.push(Expr::Payload {
            base: NFT_PAYLOAD_TRANSPORT_HEADER,
            offset: 2,
            len: 2,
        });
        if lo == hi {
            out.push(Expr::Cmp(NFT_CMP_EQ, lo.to_be_bytes().to_vec()));
        } else {
            out.push(Expr::Cmp(NFT_CMP_GTE, lo.to_be_bytes().to_vec()));
            out.push(Expr::Cmp(NFT_CMP_LTE, hi.to_be_bytes().to_vec()));
        }
    }
    out
}

/// The nftables rules of one planned rule: two when ports are given
/// without a protocol (one each for tcp and udp, whose port fields are
/// where the payload expression reads them).
fn lower_rule(rule: &EgressRule) -> Vec<Vec<Expr>> {
    let verdict = || match rule.verdict {
        Verdict::Accept => Expr::Accept,
        Verdict::Reject => Expr::Reject,
    };
    match rule.target {
        Target::Loopback => vec![vec![
            Expr::Meta(NFT_META_OIF),
            Expr::Cmp(NFT_CMP_EQ, LOOPBACK_IFINDEX.to_ne_bytes().to_vec()),
            verdict(),
        ]],
        Target::Everything => vec![vec![verdict()]],
        Target::Destination { net, ports, proto } => {
            let protos: Vec<Option<Proto>> = match (ports, proto) {
                (Some(_), None) => vec![Some(Proto::Tcp), Some(Proto::Udp)],
                (_, p) => vec![p],
            };
            protos
                .into_iter()
                .map(|p| {
                    let mut exprs = match_address(net.address, net.prefix);
                    exprs.extend(match_ports(p, ports));
                    exprs.push(verdict());
                    exprs
                })
                .collect()
        }
    }
}

/// IPv6 neighbour discovery (ICMPv6 types 133 to 137), accepted before
/// any rule: a link-local gateway must stay reachable.
fn neighbour_discovery() -> Vec<Expr> {
    vec![
        Expr::Meta(NFT_META_L4PROTO),
        Expr::Cmp(NFT_CMP_EQ, vec![IPPROTO_ICMPV6]),
        Expr::Payload {
            base: NFT_PAYLOAD_TRANSPORT_HEADER,
            offset: 0,
            len: 1,
        },
        Expr::Cmp(NFT_CMP_GTE, vec![133]),
        Expr::Cmp(NFT_CMP_LTE, vec![137]),
        Expr::Accept,
    ]
}

/// The batch for `rules` (empty rules: no batch).
pub fn lower(rules: &[EgressRule]) -> Option<EgressBatch> {
    if rules.is_empty() {
        return None;
    }
    let mut bytes = Vec::new();
    let mut what = Vec::new();
    let nft = |msg: u16| (NFNL_SUBSYS_NFTABLES << 8) | msg;
    let acked = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
    let mut seq = 0u32;
    let mut next = |what: &mut Vec<CString>, text: &str| {
        what.push(CString::new(text).expect("no NUL in a description"));
        seq += 1;
        seq - 1
    };
    Message::new(
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        u32::MAX,
        0,
        NFNL_SUBSYS_NFTABLES,
    )
    .finish(&mut bytes);
    let mut table = Message::new(
        nft(NFT_MSG_NEWTABLE),
        acked,
        next(&mut what, "table inet hutch"),
        NFPROTO_INET,
        0,
    );
    table.str(NFTA_TABLE_NAME, TABLE);
    table.finish(&mut bytes);
    let mut chain = Message::new(
        nft(NFT_MSG_NEWCHAIN),
        acked,
        next(&mut what, "chain egress on the output hook"),
        NFPROTO_INET,
        0,
    );
    chain.str(NFTA_CHAIN_TABLE, TABLE);
    chain.str(NFTA_CHAIN_NAME, CHAIN);
    let hook = chain.begin(NFTA_CHAIN_HOOK);
    chain.u32(NFTA_HOOK_HOOKNUM, NF_INET_LOCAL_OUT);
    chain.u32(NFTA_HOOK_PRIORITY, 0);
    chain.end(hook);
    chain.u32(NFTA_CHAIN_POLICY, NF_ACCEPT);
    chain.str(NFTA_CHAIN_TYPE, "filter");
    chain.finish(&mut bytes);
    let described = std::iter::once((
        neighbour_discovery(),
        "accept IPv6 neighbour discovery".to_string(),
    ))
    .chain(rules.iter().flat_map(|r| {
        lower_rule(r)
            .into_iter()
            .map(move |exprs| (exprs, format!("{} ({})", r.describe(), r.why)))
    }));
    for (exprs, text) in described {
        let mut m = Message::new(
            nft(NFT_MSG_NEWRULE),
            acked | NLM_F_APPEND,
            next(&mut what, &text),
            NFPROTO_INET,
            0,
        );
        m.str(NFTA_RULE_TABLE, TABLE);
        m.str(NFTA_RULE_CHAIN, CHAIN);
        let list = m.begin(NFTA_RULE_EXPRESSIONS);
        for e in &exprs {
            e.encode(&mut m);
        }
        m.end(list);
        m.finish(&mut bytes);
    }
    Message::new(
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        u32::MAX,
        0,
        NFNL_SUBSYS_NFTABLES,
    )
    .finish(&mut bytes);
    Some(EgressBatch { bytes, what })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::network::Cidr;

    #[test]
    fn masks_cover_the_prefix() {
        let exprs = match_address("10.0.0.0".parse().unwrap(), 12);
        let Some(Expr::Mask(mask)) = exprs.get(3) else {
            panic!("no mask")
        };
        assert_eq!(mask, &[0xff, 0xf0, 0, 0]);
        // A whole address needs no mask; prefix 0 only the family.
        assert_eq!(match_address("10.0.0.1".parse().unwrap(), 32).len(), 4);
        assert_eq!(match_address("::".parse().unwrap(), 0).len(), 2);
    }

    #[test]
    fn a_port_without_protocol_is_a_rule_for_tcp_and_one_for_udp() {
        let rule = EgressRule {
            verdict: Verdict::Accept,
            target: Target::Destination {
                net: Cidr::new("0.0.0.0".parse().unwrap(), 0),
                ports: Some((443, 443)),
                proto: None,
            },
            why: "test".into(),
        };
        assert_eq!(lower_rule(&rule).len(), 2);
        let batch = lower(&[rule]).unwrap();
        // table, chain, neighbour discovery, tcp, udp
        assert_eq!(batch.what.len(), 5);
        // Every message's length field adds up to the whole batch.
        let mut at = 0;
        let mut messages = 0;
        while at < batch.bytes.len() {
            let len = u32::from_ne_bytes(batch.bytes[at..at + 4].try_into().unwrap()) as usize;
            assert!(len >= NETLINK_HEADER + NFGENMSG && len.is_multiple_of(4));
            at += len;
            messages += 1;
        }
        assert_eq!(at, batch.bytes.len());
        assert_eq!(messages, 5 + 2, "with the batch's begin and end");
    }
}
