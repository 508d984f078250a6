//! The refresh model of SPEC §1: the fields a row can carry and the validated
//! item that validation produces and the store applies.

use serde::{Deserialize, Serialize};

/// The longest value a field accepts, in characters (SPEC §4.2). Where a
/// reader would otherwise multiply a value (a JSON body's location copied
/// into each item, an ODS run of spaces), it cuts it just past this, still
/// too long to pass.
pub const MAX_LEN: usize = 255;

/// A field of the Inventory Refresh request that a column can map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    LocationName,
    ManufacturerId,
    PartNumber,
    Upc,
    Sku,
    BinId,
    Quantity,
    Ltd,
    Floor,
    SafetyStock,
    CurrencyId,
    RetailPrice,
    Attributes,
}

impl Field {
    pub const ALL: [Field; 13] = [
        Field::LocationName,
        Field::ManufacturerId,
        Field::PartNumber,
        Field::Upc,
        Field::Sku,
        Field::BinId,
        Field::Quantity,
        Field::Ltd,
        Field::Floor,
        Field::SafetyStock,
        Field::CurrencyId,
        Field::RetailPrice,
        Field::Attributes,
    ];

    /// The API's name for the field, used in reports and listings.
    pub fn api_name(self) -> &'static str {
        match self {
            Field::LocationName => "locationName",
            Field::ManufacturerId => "manufacturerID",
            Field::PartNumber => "partNumber",
            Field::Upc => "upc",
            Field::Sku => "sku",
            Field::BinId => "binID",
            Field::Quantity => "quantity",
            Field::Ltd => "ltd",
            Field::Floor => "floor",
            Field::SafetyStock => "safetyStock",
            Field::CurrencyId => "currencyID",
            Field::RetailPrice => "retailPrice",
            Field::Attributes => "attributes",
        }
    }

    /// Header names accepted for the field, already normalised (SPEC §3).
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Field::LocationName => &[
                "locationname",
                "location",
                "locationid",
                "loc",
                "store",
                "storeid",
                "storenumber",
                "storeno",
                "site",
                "warehouse",
            ],
            Field::ManufacturerId => &["manufacturerid", "mfrid"],
            Field::PartNumber => &["partnumber", "part", "partno", "mpn"],
            Field::Upc => &["upc", "upccode", "gtin", "ean", "barcode"],
            Field::Sku => &[
                "sku",
                "skucode",
                "itemsku",
                "itemnumber",
                "itemno",
                "itemcode",
                "itemid",
                "productcode",
                "productid",
                "articlenumber",
                "articleno",
                "artno",
            ],
            Field::BinId => &["binid", "bin"],
            Field::Quantity => &[
                "quantity",
                "qty",
                "onhand",
                "qoh",
                "qtyonhand",
                "onhandqty",
                "quantityonhand",
                "available",
                "qtyavailable",
                "availableqty",
            ],
            Field::Ltd => &["ltd"],
            Field::Floor => &["floor", "minqty", "minimum"],
            Field::SafetyStock => &["safetystock", "safety"],
            Field::CurrencyId => &["currencyid"],
            Field::RetailPrice => &["retailprice", "price", "retail"],
            Field::Attributes => &["attributes", "attribute", "attrs"],
        }
    }

    /// The field a normalised header names, if any.
    pub fn from_alias(normalised: &str) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|f| f.aliases().contains(&normalised))
    }
}

/// The identifiers an item or inventory record carries. At least one is set
/// on every valid item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identifiers {
    pub sku: Option<String>,
    pub part_number: Option<String>,
    /// As given (after restoring dropped leading zeros).
    pub upc: Option<String>,
}

impl Identifiers {
    pub fn is_empty(&self) -> bool {
        self.sku.is_none() && self.part_number.is_none() && self.upc.is_none()
    }

    /// The UPC as GTIN-14, the form UPCs are matched in.
    pub fn upc14(&self) -> Option<String> {
        self.upc.as_deref().map(gtin14)
    }

    /// A short human description, e.g. `sku 101010, upc 036000291452`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = &self.sku {
            parts.push(format!("sku {v}"));
        }
        if let Some(v) = &self.part_number {
            parts.push(format!("partNumber {v}"));
        }
        if let Some(v) = &self.upc {
            parts.push(format!("upc {v}"));
        }
        parts.join(", ")
    }
}

/// Left-pads a UPC/EAN/GTIN to 14 digits.
pub fn gtin14(upc: &str) -> String {
    format!("{upc:0>14}")
}

/// A UPC as it is matched, without building its GTIN-14: two UPCs of at
/// most 14 digits have the same GTIN-14 exactly when they are equal
/// without their leading zeros.
pub fn upc_key(upc: &str) -> &str {
    if upc.len() <= 14 {
        upc.trim_start_matches('0')
    } else {
        upc
    }
}

/// The optional fields of an item: `None` means "not in the file, leave the
/// record's value as it is".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Optionals {
    pub bin_id: Option<i64>,
    pub ltd: Option<f64>,
    pub floor: Option<i64>,
    pub safety_stock: Option<i64>,
    pub currency_id: Option<i64>,
    pub retail_price: Option<f64>,
}

impl Optionals {
    /// Takes each value `other` carries; keeps its own where `other` has
    /// none.
    pub fn take_given(&mut self, other: &Optionals) {
        self.bin_id = other.bin_id.or(self.bin_id);
        self.ltd = other.ltd.or(self.ltd);
        self.floor = other.floor.or(self.floor);
        self.safety_stock = other.safety_stock.or(self.safety_stock);
        self.currency_id = other.currency_id.or(self.currency_id);
        self.retail_price = other.retail_price.or(self.retail_price);
    }
}

/// One validated item of a refresh job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub ids: Identifiers,
    pub quantity: i64,
    pub optionals: Optionals,
    pub attributes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upc_keys_match_exactly_when_gtin14s_do() {
        let upcs = [
            "036000291452",
            "0036000291452",
            "00036000291452",
            "36000291452",
            "000000000000",
            "0",
            "",
            "12345678901234",
            "012345678901234",
            "0012345678901234",
            "0A",
            "A",
        ];
        for a in upcs {
            for b in upcs {
                assert_eq!(upc_key(a) == upc_key(b), gtin14(a) == gtin14(b), "{a} {b}");
            }
        }
    }
}
