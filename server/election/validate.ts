// Request checks shared by every handler (API.md section 4). Each check throws an
// ElectdError naming the offending field or limit before anything is changed.
//
// Messages start with the field name and avoid the characters ,:;/?@&=+$# : gRPC carries
// messages percent-encoded, and @grpc/grpc-js decodes them with decodeURI, which leaves
// exactly those characters encoded.
import { invalid } from "../errors.js";

export interface InputLimits {
  /** Most UTF-8 bytes in an election name, candidate name or tag. */
  readonly maxNameBytes: number;
  /** Most tags on one election. */
  readonly maxTags: number;
}

// Cc covers C0, DEL and C1 controls. Cf covers the invisible format characters: bidi
// overrides and isolates (U+202A..U+202E, U+2066..U+2069: "\u202egnp.exe" shows as
// "exe.png"), zero-width space and joiners, the byte-order mark, soft hyphen: a name must
// look like what it is. U+FFFD is what a lenient UTF-8 decoder leaves where a request
// carried invalid bytes, so it is refused as "not valid UTF-8".
const CONTROL = /\p{Cc}/u;
const FORMAT = /\p{Cf}/u;
const REPLACEMENT = "\uFFFD";

/** A name or tag: non-empty (unless allowed), valid UTF-8, no control characters, bounded. */
export function text(
  field: string,
  value: string,
  limits: InputLimits,
  allowEmpty = false,
): string {
  if (value === "") {
    if (allowEmpty) return value;
    throw invalid(field, "must not be empty");
  }
  if (!value.isWellFormed() || value.includes(REPLACEMENT)) {
    throw invalid(field, "must be valid UTF-8");
  }
  if (CONTROL.test(value)) throw invalid(field, "must not contain control characters");
  if (FORMAT.test(value)) {
    const at = value.match(FORMAT)?.[0]?.codePointAt(0) ?? 0;
    throw invalid(
      field,
      `must not contain invisible format characters such as bidi controls or zero-width characters (found U+${at.toString(16).toUpperCase().padStart(4, "0")})`,
    );
  }
  const bytes = Buffer.byteLength(value, "utf8");
  if (bytes > limits.maxNameBytes) {
    throw invalid(
      field,
      `is ${bytes} bytes of UTF-8 but the limit is ${limits.maxNameBytes} (MAX_NAME_BYTES)`,
    );
  }
  return value;
}

/** The election named by `id.name`; `id` is a message field so it may be missing. */
export function electionName(id: { name: string } | undefined, limits: InputLimits): string {
  if (id === undefined) throw invalid("id", "is required");
  return text("id.name", id.name, limits);
}

export function candidateName(candidate: string, limits: InputLimits): string {
  return text("candidate", candidate, limits);
}

export function tagList(tags: readonly string[], limits: InputLimits): string[] {
  if (tags.length > limits.maxTags) {
    throw invalid("tags", `has ${tags.length} tags but the limit is ${limits.maxTags} (MAX_TAGS)`);
  }
  return tags.map((tag, i) => text(`tags[${i}]`, tag, limits));
}
