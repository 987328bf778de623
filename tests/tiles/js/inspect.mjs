// Independent readers for the tests, built on 3d-tiles-tools 0.5.4 and glTF-Transform (the
// meshoptimizer JS decoder CesiumJS also uses). Prints one JSON document on stdout.
//   node inspect.mjs traverse DIR     every tile as 3d-tiles-tools resolves it (implicit tiles
//                                     with their metadata-semantic overrides applied)
//   node inspect.mjs glb FILE         geometry via glTF-Transform and property tables via
//                                     3d-tiles-tools' BinaryPropertyTableModel
import { readFileSync } from "node:fs";
import path from "node:path";
import tools from "3d-tiles-tools";
import { NodeIO } from "@gltf-transform/core";
import { EXTMeshoptCompression, KHRMeshQuantization } from "@gltf-transform/extensions";
import { MeshoptDecoder } from "meshoptimizer";

const { ResourceResolvers, TilesetTraverser, BinaryPropertyTableModel, MetadataUtilities } = tools;

async function traverse(dir) {
  const tileset = JSON.parse(readFileSync(path.join(dir, "tileset.json"), "utf8"));
  const resolver = ResourceResolvers.createFileResourceResolver(dir);
  const traverser = new TilesetTraverser(dir, resolver, { depthFirst: true });
  const tiles = [];
  await traverser.traverseWithSchema(tileset, tileset.schema, async (t) => {
    const f = t.asFinalTile();
    const gc = typeof t.getGlobalCoordinate === "function" ? t.getGlobalCoordinate() : undefined;
    tiles.push({
      level: t.level,
      coord: gc ? [gc.level, gc.x, gc.y] : null,
      region: f.boundingVolume.region,
      geometricError: f.geometricError,
      refine: f.refine ?? null,
      contents: t.getFinalContents().map((c) => ({ uri: c.uri, region: c.boundingVolume?.region ?? null })),
    });
    return true;
  });
  return tiles;
}

function splitGlb(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const jlen = dv.getUint32(12, true);
  const json = JSON.parse(Buffer.from(bytes.subarray(20, 20 + jlen)).toString("utf8"));
  const blen = dv.getUint32(20 + jlen, true);
  const bin = Buffer.from(bytes.subarray(28 + jlen, 28 + jlen + blen));
  return { json, bin };
}

async function glb(file) {
  const bytes = new Uint8Array(readFileSync(file));
  const io = new NodeIO()
    .registerExtensions([EXTMeshoptCompression, KHRMeshQuantization])
    .registerDependencies({ "meshopt.decoder": MeshoptDecoder });
  await MeshoptDecoder.ready;
  const doc = await io.readBinary(bytes);
  const root = doc.getRoot();
  const node = root.listNodes().find((n) => n.getMesh());
  const prim = node.getMesh().listPrimitives()[0];
  const pos = prim.getAttribute("POSITION");
  const out = { world: Array.from(node.getWorldMatrix()), positions: [], attributes: {} };
  const el = [];
  for (let i = 0; i < pos.getCount(); i++) out.positions.push(Array.from(pos.getElement(i, el)));
  for (const name of ["_FEATURE_ID_0", "_FEATURE_ID_1", "_BATCHID"]) {
    const a = prim.getAttribute(name);
    if (a) out.attributes[name] = Array.from(a.getArray());
  }
  out.indices = Array.from(prim.getIndices().getArray());
  const { json, bin } = splitGlb(bytes);
  const meta = json.extensions?.EXT_structural_metadata;
  out.tables = [];
  if (meta) {
    const views = json.bufferViews.map((bv) =>
      bv.buffer === 0 ? bin.subarray(bv.byteOffset ?? 0, (bv.byteOffset ?? 0) + bv.byteLength) : Buffer.alloc(0));
    for (const table of meta.propertyTables) {
      const model = new BinaryPropertyTableModel({
        propertyTable: table,
        binaryMetadata: {
          metadataClass: meta.schema.classes[table.class],
          binaryEnumInfo: MetadataUtilities.computeBinaryEnumInfo(meta.schema),
          binaryBufferStructure: { buffers: json.buffers, bufferViews: json.bufferViews },
          binaryBufferData: { bufferViewsData: views, buffersData: [bin] },
        },
      });
      const cols = {};
      for (const name of Object.keys(table.properties)) {
        cols[name] = [];
        for (let i = 0; i < table.count; i++) {
          const v = model.getMetadataEntityModel(i).getPropertyValue(name);
          cols[name].push(typeof v === "bigint" ? Number(v) : v ?? null);
        }
      }
      out.tables.push(cols);
    }
  }
  return out;
}

const [cmd, arg] = process.argv.slice(2);
const result = cmd === "traverse" ? await traverse(arg) : await glb(arg);
process.stdout.write(JSON.stringify(result));
