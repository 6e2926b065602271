//! The built-in attribute type table (RFC 4519, 4524, 2798, 2307/nis, operational).

use super::AttributeType;
use crate::matching::MatchingRule::*;

pub(super) static ATTRIBUTE_TYPES: &[AttributeType] = &[
    AttributeType {
        oid: "2.5.4.41",
        names: &["name"],
        sup: None,
        equality: Some(CaseIgnore),
        ordering: None,
        substr: Some(CaseIgnore),
    },
    AttributeType {
        oid: "2.5.4.3",
        names: &["cn", "commonName"],
        sup: Some("name"),
        equality: None,
        ordering: None,
        substr: None,
    },
    AttributeType {
        oid: "2.5.4.0",
        names: &["objectClass"],
        sup: None,
        equality: Some(ObjectIdentifier),
        ordering: None,
        substr: None,
    },
];
