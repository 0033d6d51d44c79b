//! JSON request bodies that must be objects. serde takes an array for a struct too (its fields
//! in order: `["dev-1", "Boiler"]` would register a device), which the OpenAPI document does not
//! allow and no client means; [`Object`] accepts a JSON object only, and anything else is the
//! same 422 as a field of the wrong type.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use actix_web::web;
use serde::de::{value::MapAccessDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A request body: a JSON object read as `T`.
pub type Body<T> = web::Json<Object<T>>;

/// `T` read from a JSON object, and from nothing else.
#[derive(Debug)]
pub struct Object<T>(pub T);

impl<T> Deref for Object<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OnlyMaps<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for OnlyMaps<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(OnlyMaps(PhantomData))
            .map(Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Pair {
        a: String,
        b: Option<u8>,
    }

    #[test]
    fn an_object_is_read_and_an_array_or_scalar_is_refused() {
        let read = |json: &str| serde_json::from_str::<Object<Pair>>(json).map(|o| o.0);
        assert_eq!(
            read(r#"{"a": "x", "b": 2}"#).unwrap(),
            Pair {
                a: "x".into(),
                b: Some(2)
            }
        );
        assert_eq!(read(r#"{"a": "x"}"#).unwrap().b, None);
        // Plain serde takes the array; Object does not, and says what it wants.
        assert!(serde_json::from_str::<Pair>(r#"["x", 2]"#).is_ok());
        for bad in [r#"["x", 2]"#, r#""x""#, "3", "true"] {
            let e = read(bad).unwrap_err();
            assert!(e.is_data(), "{bad}: {e}");
            assert!(e.to_string().contains("expected a JSON object"), "{e}");
        }
        assert!(read(r#"{"a": "x", "c": 1}"#).is_err());
        assert!(serde_json::from_str::<Option<Object<Pair>>>("null")
            .unwrap()
            .is_none());
    }
}
