//! `fix_jellyfin_metadata` ✎: refresh one Jellyfin item's metadata, by id
//! or by a title that matches exactly one item (the candidates otherwise,
//! nothing refreshed).

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Call, Hints, Meta, Render, ToolContext, ToolDef, ToolError, Toolset};
use crate::services::media;

/// A Jellyfin item id: 32 hex digits (a GUID with or without dashes,
/// normalised to the 32-digit form Jellyfin prints).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct ItemId(String);

impl<'de> Deserialize<'de> for ItemId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let s = String::deserialize(d)?;
        let hex: String = s.trim().chars().filter(|c| *c != '-').collect();
        if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(ItemId(hex.to_ascii_lowercase()))
        } else {
            Err(D::Error::custom(format!(
                "{s:?} is not a Jellyfin item id (32 hexadecimal digits); pass name to search by title"
            )))
        }
    }
}

impl JsonSchema for ItemId {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ItemId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string"})
    }
}

/// Arguments of `fix_jellyfin_metadata`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FixArgs {
    /// Title to search for (one of name, itemId).
    #[serde(default)]
    pub name: Option<super::args::Text>,
    /// The item's id (32 hex digits).
    #[serde(default, rename = "itemId")]
    pub item_id: Option<ItemId>,
    /// Replace all metadata and images instead of filling what is missing.
    #[serde(default, rename = "replaceAll")]
    pub replace_all: bool,
}

/// An item.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Item {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Movie, Series, Episode, MusicAlbum, …
    #[serde(rename = "type")]
    pub type_: String,
    /// Series, for an episode.
    #[serde(rename = "seriesName", skip_serializing_if = "Option::is_none")]
    pub series_name: Option<String>,
    /// Path on the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// What became of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FixState {
    /// The refresh was queued for the item.
    Refreshed,
    /// The name matches several items: nothing was refreshed; pick one
    /// and call again with its itemId.
    Ambiguous,
}

/// What `fix_jellyfin_metadata` did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FixReport {
    /// refreshed or ambiguous.
    pub state: FixState,
    /// The item refreshed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<Item>,
    /// The candidates, when ambiguous.
    pub candidates: Vec<Item>,
    /// Metadata and images replaced rather than filled in.
    #[serde(rename = "replaceAll")]
    pub replace_all: bool,
}

impl Render for FixReport {
    /// An ambiguous name refreshes nothing: the audit says no_change.
    fn changed_nothing(&self) -> bool {
        self.state == FixState::Ambiguous
    }

    fn text(&self) -> String {
        match (self.state, &self.item) {
            (FixState::Refreshed, Some(i)) => format!(
                "metadata refresh queued for {} {} ({}){}\n",
                i.type_,
                i.name,
                i.id,
                if self.replace_all {
                    ", replacing all metadata and images"
                } else {
                    ""
                }
            ),
            _ => {
                let mut t = if self.candidates.len() == 1 {
                    "no title matches exactly and replaceAll discards metadata; nothing refreshed — \
                     if this is the item, call again with its itemId:\n"
                        .to_string()
                } else {
                    format!(
                        "{} items match; nothing refreshed — call again with itemId:\n",
                        self.candidates.len()
                    )
                };
                for c in &self.candidates {
                    t.push_str(&format!(
                        "  {} {} {}{}\n",
                        c.id,
                        c.type_,
                        c.name,
                        c.series_name
                            .as_deref()
                            .map(|s| format!(" ({s})"))
                            .unwrap_or_default()
                    ));
                }
                t
            }
        }
    }
}

/// A Jellyfin id as compared: lower case, without dashes (the API prints
/// 32 hex digits; a GUID with dashes names the same item).
fn normal_id(id: &str) -> String {
    id.chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// `fix_jellyfin_metadata` ✎.
pub fn fix_tool() -> ToolDef {
    ToolDef::mutating(
        Meta {
            name: "fix_jellyfin_metadata",
            title: "Refresh Jellyfin metadata",
            description: "Refresh a Jellyfin item's metadata by itemId or name (candidates when ambiguous).",
            toolset: Toolset::Services,
            hints: Hints::CHANGE.on_a_service(),
        },
        |p, _: &FixArgs| p.jellyfin_metadata(),
        fix,
    )
}

fn item_of(v: super::media::wire::Item) -> Item {
    Item {
        id: v.id,
        name: v.name,
        type_: v.kind,
        series_name: v.series_name,
        path: v.path,
    }
}

async fn fix(ctx: Arc<ToolContext>, a: FixArgs, _call: Call) -> Result<FixReport, ToolError> {
    let Some(j) = ctx.services.jellyfin.clone() else {
        return Err(ToolError::new(
            super::ErrorCode::NotConfigured,
            "no [jellyfin] in the config file",
            "add [jellyfin] with url and api_key_env or api_key_file (README, \"Configuration\")",
        ));
    };
    let item = match (&a.item_id, &a.name) {
        (Some(_), Some(_)) => {
            return Err(ToolError::invalid(
                "itemId",
                "give itemId or name, not both",
            ));
        }
        (None, None) => {
            return Err(ToolError::invalid(
                "name",
                "give name (a title to search) or itemId",
            ));
        }
        (Some(id), None) => by_id(&j, id).await?,
        (None, Some(name)) => match by_name(&j, name, a.replace_all).await? {
            Found::One(item) => item,
            Found::Several(candidates) => {
                return Ok(FixReport {
                    state: FixState::Ambiguous,
                    item: None,
                    candidates,
                    replace_all: a.replace_all,
                });
            }
        },
    };
    // The id goes into the path: only 32 hex digits may (Jellyfin's own ids
    // are; a search result is checked again).
    if !(item.id.len() == 32 && item.id.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(ToolError::new(
            super::ErrorCode::ServiceError,
            format!(
                "Jellyfin returned an item id that is not 32 hex digits: {:?}",
                item.id
            ),
            "this Jellyfin answers unlike 10.x; refresh the item from its web UI",
        ));
    }
    let replace = if a.replace_all { "true" } else { "false" };
    j.send(
        http::Method::POST,
        &format!(
            "/Items/{}/Refresh?MetadataRefreshMode=FullRefresh&ImageRefreshMode=FullRefresh&ReplaceAllMetadata={replace}&ReplaceAllImages={replace}",
            item.id
        ),
        false,
    )
    .await
    .map_err(media_error)?;
    Ok(FixReport {
        state: FixState::Refreshed,
        item: Some(item),
        candidates: Vec::new(),
        replace_all: a.replace_all,
    })
}

/// A media client's failure as a tool error.
fn media_error(e: media::Error) -> ToolError {
    let code = match e {
        media::Error::Unauthorized { .. } => super::ErrorCode::Unauthenticated,
        media::Error::Forbidden { .. } => super::ErrorCode::PermissionDenied,
        media::Error::NotFound { .. } => super::ErrorCode::NotFound,
        media::Error::Unreachable { .. } => super::ErrorCode::ServiceUnreachable,
        _ => super::ErrorCode::ServiceError,
    };
    ToolError::new(code, e.to_string(), e.hint())
}

/// The item whose id is `id`, and no other (a server that ignored the Ids
/// filter answers with other items, which must not be refreshed).
async fn by_id(j: &media::MediaClient, id: &ItemId) -> Result<Item, ToolError> {
    let v = j
        .get_typed::<super::media::wire::Items>(
            &format!("/Items?Ids={}&Recursive=true", id.0),
            false,
        )
        .await
        .map_err(media_error)?;
    // Only the item asked for: a server that ignored the Ids filter
    // answers with other items, and those must not be refreshed.
    let wanted = normal_id(&id.0);
    let found = v
        .items
        .into_iter()
        .map(item_of)
        .find(|i| normal_id(&i.id) == wanted);
    found.ok_or_else(|| {
        ToolError::new(
            super::ErrorCode::NotFound,
            format!("Jellyfin has no item {}", id.0),
            "search by name instead, or check the id in Jellyfin's web UI (the id is in the item's URL)",
        )
    })
}

/// What a title search found.
enum Found {
    /// The one item to refresh.
    One(Item),
    /// Several (or one that only resembles the title while replaceAll is
    /// asked): the candidates, nothing refreshed.
    Several(Vec<Item>),
}

/// The items whose title is `name` (exactly, else the search's matches).
async fn by_name(
    j: &media::MediaClient,
    name: &str,
    replace_all: bool,
) -> Result<Found, ToolError> {
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(ToolError::invalid("name", "a title of 1 to 200 characters"));
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("searchTerm", name)
        .append_pair("Limit", "20")
        .append_pair("Recursive", "true")
        .append_pair(
            "IncludeItemTypes",
            "Movie,Series,Episode,MusicAlbum,MusicArtist",
        )
        .finish();
    let v = j
        .get_typed::<super::media::wire::Items>(&format!("/Items?{query}"), false)
        .await
        .map_err(media_error)?;
    let items: Vec<Item> = v.items.into_iter().map(item_of).collect();
    let exact: Vec<Item> = items
        .iter()
        .filter(|i| i.name.eq_ignore_ascii_case(name))
        .cloned()
        .collect();
    let fuzzy = exact.is_empty();
    let pick = if fuzzy { items } else { exact };
    // replaceAll throws the item's metadata away: a title that only
    // resembles the name is confirmed by its itemId first.
    if fuzzy && pick.len() == 1 && replace_all {
        return Ok(Found::Several(pick));
    }
    match pick.len() {
        0 => Err(ToolError::new(
            super::ErrorCode::NotFound,
            format!("no Jellyfin item matches {name:?}"),
            "check the title's spelling, or pass itemId",
        )),
        1 => Ok(Found::One(
            pick.into_iter()
                .next()
                .unwrap_or_else(|| unreachable!("one item")),
        )),
        _ => Ok(Found::Several(pick)),
    }
}
