//! What converting a column's values from one type to another can do to them: nothing (a
//! widening), fail on some values (out of range, not parseable), lose part of them silently
//! (a cast to a shorter `varchar(n)` truncates, to fewer decimals or to an integer rounds), or
//! give them another meaning (a `timestamp` read as `timestamptz` in the session's time zone).

use crate::model::TypeName;

/// What a conversion does to existing values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Conversion {
    /// Every value converts exactly.
    Exact,
    /// Values keep their text but are read differently (time zones).
    Reinterprets,
    /// Some values may be rejected: the statement fails, nothing is lost.
    MayFail,
    /// Some values may be cut or rounded without an error.
    LosesData,
}

impl Conversion {
    /// How to say it in a hazard.
    pub fn describe(self, from: &str, to: &str) -> String {
        match self {
            Conversion::Exact => format!("{from} to {to} converts every value exactly"),
            Conversion::Reinterprets => format!(
                "{from} to {to} reads the stored values in the session's TimeZone: the same text, another instant \
                 unless the values were written in that zone"
            ),
            Conversion::MayFail => {
                format!(
                    "{from} to {to} fails on any existing value that does not convert (the table is left as it was)"
                )
            }
            Conversion::LosesData => format!(
                "{from} to {to} silently cuts or rounds existing values that do not fit (longer text is truncated, \
                 extra decimals rounded)"
            ),
        }
    }
}

fn integer_rank(name: &str) -> Option<u8> {
    match name {
        "int2" => Some(1),
        "int4" => Some(2),
        "int8" => Some(3),
        _ => None,
    }
}

fn is_text(name: &str) -> bool {
    matches!(name, "text" | "varchar" | "bpchar")
}

impl TypeName {
    /// A type as SQL spells it (`character varying(20)`, `numeric(12,2)`, as `format_type`
    /// prints it), read into this model with PostgreSQL's own grammar.
    pub fn parse(spelled: &str) -> Option<TypeName> {
        let p = crate::parse::parse_sql(&format!("ALTER TABLE t ALTER COLUMN c TYPE {spelled}"));
        match &p.statements.first()?.kind {
            crate::model::StmtKind::AlterTable { actions, .. } => match actions.first()? {
                crate::model::AlterAction::AlterType { new_type, .. } => Some(new_type.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    /// What converting this type's values to `new` (as `USING col::new` does) does to them.
    pub fn conversion_to(&self, new: &TypeName) -> Conversion {
        let old = self;
        if old.binary_compatible_to(new) {
            return Conversion::Exact;
        }
        if old.array_dims != new.array_dims {
            return Conversion::MayFail;
        }
        let (o, n) = (old.name.as_str(), new.name.as_str());
        let length = |t: &TypeName| t.mods.first().copied();
        match (o, n) {
            // Anything has a text form; an unbounded text type holds all of it.
            (_, "text") if o != "bytea" => Conversion::Exact,
            (_, "varchar") if new.mods.is_empty() && o != "bytea" => Conversion::Exact,
            // A bounded text type: a cast truncates what is longer (char pads what is shorter).
            (_, "varchar" | "bpchar") if is_text(o) => match (length(old), length(new)) {
                (Some(a), Some(b)) if b >= a && (o == n || n == "varchar") => Conversion::Exact,
                _ => Conversion::LosesData,
            },
            (_, "varchar" | "bpchar") => Conversion::LosesData,
            _ if integer_rank(o).is_some() && integer_rank(n).is_some() => {
                if integer_rank(n) >= integer_rank(o) {
                    Conversion::Exact
                } else {
                    Conversion::MayFail
                }
            }
            (_, "numeric") if integer_rank(o).is_some() => match new.mods.as_slice() {
                [] => Conversion::Exact,
                [p] | [p, _] => {
                    let scale = new.mods.get(1).copied().unwrap_or(0);
                    let digits = match o {
                        "int2" => 5,
                        "int4" => 10,
                        _ => 19,
                    };
                    if p - scale >= digits {
                        Conversion::Exact
                    } else {
                        Conversion::MayFail
                    }
                }
                _ => Conversion::MayFail,
            },
            ("numeric", "numeric") => match (old.mods.as_slice(), new.mods.as_slice()) {
                ([], _) => Conversion::LosesData,
                ([_, s1], [_, s2]) if s2 < s1 => Conversion::LosesData,
                _ => Conversion::MayFail,
            },
            ("numeric" | "float4" | "float8", _) if integer_rank(n).is_some() => Conversion::LosesData,
            ("float4", "float8") => Conversion::Exact,
            ("float8", "float4") => Conversion::LosesData,
            (_, "float4" | "float8") if integer_rank(o).is_some() || o == "numeric" => Conversion::LosesData,
            ("timestamp", "timestamptz") | ("timestamptz", "timestamp") => Conversion::Reinterprets,
            ("date", "timestamp" | "timestamptz") => Conversion::Exact,
            ("timestamp" | "timestamptz", "date") => Conversion::LosesData,
            ("json", "jsonb") => Conversion::MayFail,
            ("jsonb", "json") => Conversion::Exact,
            _ => Conversion::MayFail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Conversion::{self, *};

    fn ty(t: &str) -> crate::model::TypeName {
        crate::model::TypeName::parse(t).unwrap_or_else(|| panic!("{t}"))
    }

    fn conv(a: &str, b: &str) -> Conversion {
        ty(a).conversion_to(&ty(b))
    }

    #[test]
    fn widenings_are_exact() {
        for (a, b) in [
            ("smallint", "integer"),
            ("integer", "bigint"),
            ("varchar(10)", "varchar(20)"),
            ("varchar(10)", "text"),
            ("integer", "text"),
            ("integer", "numeric"),
            ("integer", "numeric(12,2)"),
            ("real", "double precision"),
            ("date", "timestamptz"),
            ("numeric(10,2)", "numeric(12,2)"),
        ] {
            assert_eq!(conv(a, b), Exact, "{a} -> {b}");
        }
    }

    #[test]
    fn narrowings_fail_or_lose_data() {
        for (a, b, want) in [
            ("bigint", "integer", MayFail),
            ("integer", "numeric(5,2)", MayFail),
            ("text", "integer", MayFail),
            ("text", "uuid", MayFail),
            ("jsonb", "integer", MayFail),
            ("varchar(20)", "varchar(10)", LosesData),
            ("text", "varchar(10)", LosesData),
            ("text", "char(3)", LosesData),
            ("numeric(12,4)", "numeric(12,2)", LosesData),
            ("numeric", "integer", LosesData),
            ("double precision", "real", LosesData),
            ("timestamptz", "date", LosesData),
            ("timestamp", "timestamptz", Reinterprets),
        ] {
            assert_eq!(conv(a, b), want, "{a} -> {b}");
        }
    }
}
