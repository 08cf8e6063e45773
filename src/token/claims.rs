//! The claims handstamp writes (in simplejwt's order) and reads back (in one pass over the
//! payload, whatever the configured claim names are).

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::{borrow::Cow, fmt};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Access,
    Refresh,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Access => "access",
            TokenType::Refresh => "refresh",
        }
    }
}

/// The names of the claims simplejwt lets a deployment rename.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub token_type: String,
    pub user_id: String,
    pub jti: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            token_type: "token_type".into(),
            user_id: "user_id".into(),
            jti: "jti".into(),
        }
    }
}

/// A token's claims. Every field is optional because a token read back may lack any of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    pub token_type: Option<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub jti: Option<String>,
    /// Always a string: an integer claim is read as its decimal form.
    pub user_id: Option<String>,
    pub nbf: Option<i64>,
    pub aud: Option<Vec<String>>,
    pub iss: Option<String>,
}

impl Claims {
    pub fn is_type(&self, kind: TokenType) -> bool {
        self.token_type.as_deref() == Some(kind.as_str())
    }
}

/// Serializes claims as simplejwt orders them: type, exp, iat, jti, user id, then the
/// deployment's audience and issuer (added at signing time, as simplejwt's backend does).
pub(crate) struct Written<'a> {
    pub names: &'a ClaimNames,
    pub claims: &'a Claims,
    pub audience: Option<&'a str>,
    pub issuer: Option<&'a str>,
}

impl Serialize for Written<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (c, n) = (self.claims, self.names);
        let mut map = s.serialize_map(None)?;
        if let Some(v) = &c.token_type {
            map.serialize_entry(&n.token_type, v)?;
        }
        if let Some(v) = c.exp {
            map.serialize_entry("exp", &v)?;
        }
        if let Some(v) = c.iat {
            map.serialize_entry("iat", &v)?;
        }
        if let Some(v) = &c.jti {
            map.serialize_entry(&n.jti, v)?;
        }
        if let Some(v) = &c.user_id {
            map.serialize_entry(&n.user_id, v)?;
        }
        if let Some(v) = self.audience {
            map.serialize_entry("aud", v)?;
        }
        if let Some(v) = self.issuer {
            map.serialize_entry("iss", v)?;
        }
        map.end()
    }
}

/// Reads a payload into [`Claims`], skipping claims it does not know.
pub(crate) struct ClaimsSeed<'a>(pub &'a ClaimNames);

impl<'de> DeserializeSeed<'de> for ClaimsSeed<'_> {
    type Value = Claims;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Claims, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ClaimsSeed<'_> {
    type Value = Claims;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims, A::Error> {
        let names = self.0;
        let mut c = Claims::default();
        while let Some(Key(key)) = map.next_key()? {
            let key = key.as_ref();
            if key == names.token_type {
                c.token_type = map.next_value()?;
            } else if key == names.jti {
                c.jti = map.next_value()?;
            } else if key == names.user_id {
                c.user_id = map.next_value::<Option<UserId>>()?.map(|u| u.0);
            } else {
                match key {
                    "exp" => c.exp = Some(map.next_value::<NumericDate>()?.0),
                    "iat" => c.iat = Some(map.next_value::<NumericDate>()?.0),
                    "nbf" => c.nbf = Some(map.next_value::<NumericDate>()?.0),
                    "iss" => c.iss = map.next_value()?,
                    "aud" => {
                        c.aud = map
                            .next_value::<Option<Audience>>()?
                            .map(Audience::into_vec)
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
        }
        Ok(c)
    }
}

/// A map key, borrowed from the payload when it holds no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A time claim: any JSON number, truncated to whole seconds as PyJWT's `int()` does.
struct NumericDate(i64);

impl<'de> de::Deserialize<'de> for NumericDate {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of seconds")
            }
            fn visit_i64<E>(self, v: i64) -> Result<NumericDate, E> {
                Ok(NumericDate(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if v.is_finite() {
                    Ok(NumericDate(v.trunc() as i64))
                } else {
                    Err(E::custom("time claim out of range"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The user id claim: a string, or an integer taken as its decimal form.
struct UserId(String);

impl<'de> de::Deserialize<'de> for UserId {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = UserId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E>(self, v: &str) -> Result<UserId, E> {
                Ok(UserId(v.to_owned()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<UserId, E> {
                Ok(UserId(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<UserId, E> {
                Ok(UserId(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn into_vec(self) -> Vec<String> {
        match self {
            Audience::One(a) => vec![a],
            Audience::Many(v) => v,
        }
    }
}
