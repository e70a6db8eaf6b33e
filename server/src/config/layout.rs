//! The [`settings!`] macro: one declaration per setting makes its flag, its environment
//! variable, its TOML key, its layering and its validated field in a [`super::Config`]
//! group. A new setting is one line here (in `super`'s declaration) and the code that
//! reads it: two places, not four.

/// Declares every setting, grouped. Each line reads
/// `name: Type, "ROOMCAST_NAME" => field: FieldType = resolver(args);`: the flag is
/// `--name`, the environment variable the literal, the TOML key `name`, and
/// `Config.group.field` is `resolver(&settings, settings.name, "name", args)`.
macro_rules! settings {
    (
        $(
            $(#[doc = $gdoc:literal])*
            $group:ident: $Group:ident {
                $(
                    $(#[doc = $doc:literal])*
                    $(#[arg($($clap:tt)*)])*
                    $field:ident: $ty:ty, $env:literal
                        => $cfield:ident: $cty:ty = $resolve:ident($($arg:expr),*);
                )*
            }
        )*
    ) => {
        /// Every setting, unset ones `None`. Flags, environment and TOML share these
        /// names.
        #[derive(Debug, Clone, Default, clap::Args, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Settings {
            $($(
                $(#[doc = $doc])*
                #[arg(long, env = $env, global = true)]
                $(#[arg($($clap)*)])*
                pub $field: Option<$ty>,
            )*)*
        }

        impl Settings {
            /// `self` where set, else `lower`.
            pub fn or(self, lower: Settings) -> Settings {
                Settings { $($($field: self.$field.or(lower.$field),)*)* }
            }
        }

        $(
            $(#[doc = $gdoc])*
            #[derive(Debug, Clone)]
            pub struct $Group {
                $(
                    $(#[doc = $doc])*
                    pub $cfield: $cty,
                )*
            }
        )*

        /// The validated configuration the server runs with, by group.
        #[derive(Debug, Clone)]
        pub struct Config {
            $(
                $(#[doc = $gdoc])*
                pub $group: $Group,
            )*
        }

        impl Config {
            /// Validates settings and fills in defaults.
            ///
            /// # Errors
            /// [`ServerError::Config`] outside dev mode without a secret or key (or with
            /// the development ones), for zero limits or intervals, and for invalid values.
            pub fn from_settings(s: Settings) -> Result<Self, ServerError> {
                Ok(Self {
                    $(
                        $group: $Group {
                            $(
                                $cfield: $resolve(
                                    &s,
                                    s.$field.clone(),
                                    stringify!($field),
                                    $($arg),*
                                )?,
                            )*
                        },
                    )*
                })
            }
        }
    };
}

pub(super) use settings;
