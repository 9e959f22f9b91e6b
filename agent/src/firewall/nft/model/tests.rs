//! Decoding captured nf_tables messages.

use super::build::*;
use super::*;

#[test]
fn a_rule_decodes_with_its_expressions_and_comment() {
    let comment = [[0u8, 6].as_slice(), b"hello\0"].concat();
    let payload = rule(
        family::IPV4,
        "filter",
        "INPUT",
        &[
            expr("payload", &[u32(1, 1), u32(2, 1), u32(3, 12), u32(4, 4)]),
            expr("cmp", &[u32(1, 1), u32(2, 0), value(3, &[10, 0, 0, 1])]),
            expr("counter", &[u64(1, 900), u64(2, 7)]),
            expr(
                "immediate",
                &[u32(1, 0), verdict(2, verdict::JUMP, Some("KUBE"))],
            ),
        ],
        Some(&comment),
    );
    let r = Rule::decode(&payload);
    assert_eq!((r.table, r.chain, r.family), ("filter", "INPUT", 2));
    assert_eq!(r.exprs.len(), 4);
    assert_eq!(r.exprs[0].kind(), ExprKind::Payload);
    assert_eq!(r.exprs[0].reg(1), Some(Reg::Data(0)));
    assert_eq!(r.exprs[0].u32(3), Some(12));
    assert_eq!(r.exprs[1].value(3), Some([10u8, 0, 0, 1].as_slice()));
    assert_eq!(r.counters(), Some((7, 900)));
    assert_eq!(
        r.exprs[3].data(2),
        Some(Data::Verdict(Verdict {
            code: verdict::JUMP,
            chain: Some("KUBE")
        }))
    );
    assert_eq!(r.comment(), Some("hello"));
}

#[test]
fn registers_are_normalised() {
    assert_eq!(Reg::from_wire(0), Reg::Verdict);
    assert_eq!(Reg::from_wire(1), Reg::Data(0));
    assert_eq!(Reg::from_wire(2), Reg::Data(4));
    assert_eq!(Reg::from_wire(8), Reg::Data(0));
    assert_eq!(Reg::from_wire(9), Reg::Data(1));
}

proptest::proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let r = Rule::decode(&bytes);
        for e in &r.exprs {
            for k in 0..20 { let _ = (e.u32(k), e.data(k), e.reg(k), e.str(k)); }
        }
        let _ = (r.comment(), r.counters());
        let _ = Chain::decode(&bytes);
        let _ = Table::decode(&bytes);
        let _ = Set::decode(&bytes);
        let _ = decode_elements(&bytes);
    }
}
