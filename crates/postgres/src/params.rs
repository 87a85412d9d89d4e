//! Query parameters that carry their PostgreSQL type, so every statement runs as one unnamed
//! statement in one round trip (`query_typed`): no server-side prepared statement is left
//! behind, which is what a transaction-mode pooler (PgBouncer, Supavisor) requires, and each
//! call saves the separate prepare round trip.

use tokio_postgres::types::{ToSql, Type};

/// A parameter with the PostgreSQL type the SQL functions declare for it.
pub(crate) type Typed<'a> = (&'a (dyn ToSql + Sync), Type);

/// A Rust value and the one PostgreSQL type it is sent as.
pub(crate) trait Param: ToSql + Sync {
    /// The declared type of the parameter.
    const TYPE: Type;
}

/// `value` with its declared type.
pub(crate) fn p<T: Param>(value: &T) -> Typed<'_> {
    (value, T::TYPE)
}

macro_rules! params {
    ($($t:ty => $ty:ident),* $(,)?) => {
        $(impl Param for $t {
            const TYPE: Type = Type::$ty;
        })*
    };
}

params! {
    uuid::Uuid => UUID,
    Option<uuid::Uuid> => UUID,
    &str => TEXT,
    String => TEXT,
    Option<String> => TEXT,
    i32 => INT4,
    Option<i32> => INT4,
    i64 => INT8,
    f64 => FLOAT8,
    &[u8] => BYTEA,
    serde_json::Value => JSONB,
    Vec<uuid::Uuid> => UUID_ARRAY,
    Vec<i64> => INT8_ARRAY,
    Vec<&str> => TEXT_ARRAY,
    &[String] => TEXT_ARRAY,
    Vec<&[u8]> => BYTEA_ARRAY,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_declared_type_is_one_the_value_can_be_sent_as() {
        fn accepts<T: Param>(_: &T) -> bool {
            T::accepts(&T::TYPE)
        }
        let bytes: &[u8] = b"x";
        let strings: &[String] = &[];
        assert!(accepts(&uuid::Uuid::nil()));
        assert!(accepts(&Some(uuid::Uuid::nil())));
        assert!(accepts(&"x"));
        assert!(accepts(&String::new()));
        assert!(accepts(&Some(String::new())));
        assert!(accepts(&1_i32));
        assert!(accepts(&1_i64));
        assert!(accepts(&1.0_f64));
        assert!(accepts(&bytes));
        assert!(accepts(&serde_json::json!({})));
        assert!(accepts(&vec![uuid::Uuid::nil()]));
        assert!(accepts(&vec![1_i64]));
        assert!(accepts(&vec!["x"]));
        assert!(accepts(&strings));
        assert!(accepts(&vec![bytes]));
    }
}
