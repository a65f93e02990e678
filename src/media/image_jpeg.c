/* image_jpeg.c: what stb_image does not tell about a JPEG. Phone photos are
 * stored sideways with an EXIF orientation tag that viewers (and the official
 * processor's PIL.ImageOps.exif_transpose) honour, so we read it with
 * libexif; a truncated file decodes in some stb versions as a grey bottom
 * half without an error, so we require the end-of-image marker; and the
 * Huffman tables are checked for a bug of the stb that Debian 12 ships. */
#include <string.h>

#include <libexif/exif-data.h>

#include "base/error.h"
#include "media/media_internal.h"

static uint32_t be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }

static bool is_sof(uint8_t m) {
    /* C0-CF are frame headers except DHT (C4), JPG (C8) and DAC (CC) */
    return m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
}

/* The orientation tag of IFD0 in an APP1 "Exif\0\0" payload; 1 when absent
 * or out of range (a broken tag must not make the photo unreadable). */
static int exif_orientation(const uint8_t *payload, size_t n) {
    ExifData *ed = exif_data_new();
    if (!ed) return 1;
    /* FOLLOW_SPECIFICATION would "fix" the data by adding entries; we only read */
    exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    exif_data_load_data(ed, payload, (unsigned int)n);
    int v = 1;
    ExifEntry *e = exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
    if (e && e->format == EXIF_FORMAT_SHORT && e->components >= 1 && e->data && e->size >= 2) {
        int o = exif_get_short(e->data, exif_data_get_byte_order(ed));
        if (o >= 1 && o <= 8) v = o;
    }
    exif_data_unref(ed);
    return v;
}

/* What the segments before a scan have defined, for checking the scan:
 * stb 2.27 (Debian 12) decodes with whatever is in memory when a scan
 * names a Huffman table no DHT defined, and writes past its tables when a
 * DHT declares more than 256 codes (both found by fuzzing; the second is
 * fixed upstream in 2.28). */
typedef struct jpeg_tables {
    unsigned dc, ac, quant;  /* bit t: table t defined */
    bool progressive;
    int n_comp;
    uint8_t comp_id[4], comp_quant[4];
} jpeg_tables;

static bool read_dht(jpeg_tables *t, const uint8_t *p, size_t n) {
    while (n > 0) {
        if (n < 17 || (p[0] >> 4) > 1 || (p[0] & 15) > 3) return false;
        size_t codes = 0;
        for (int i = 1; i <= 16; i++) codes += p[i];
        if (codes > 256 || n < 17 + codes) return false;
        if (p[0] >> 4) t->ac |= 1u << (p[0] & 15);
        else t->dc |= 1u << (p[0] & 15);
        p += 17 + codes;
        n -= 17 + codes;
    }
    return true;
}

static bool read_dqt(jpeg_tables *t, const uint8_t *p, size_t n) {
    while (n > 0) {
        size_t len = 1 + ((p[0] >> 4) ? 128 : 64); /* 8- or 16-bit entries */
        if ((p[0] >> 4) > 1 || (p[0] & 15) > 3 || n < len) return false;
        t->quant |= 1u << (p[0] & 15);
        p += len;
        n -= len;
    }
    return true;
}

static bool read_sof(jpeg_tables *t, uint8_t marker, const uint8_t *p, size_t n) {
    if (n < 6 || p[5] < 1 || p[5] > 4 || n < 6 + 3 * (size_t)p[5]) return false;
    t->progressive = marker == 0xc2 || marker == 0xc6 || marker == 0xca || marker == 0xce;
    t->n_comp = p[5];
    for (int i = 0; i < t->n_comp; i++) {
        t->comp_id[i] = p[6 + 3 * i];
        t->comp_quant[i] = p[8 + 3 * i];
        if (t->comp_quant[i] > 3) return false;
    }
    return true;
}

/* Every table the scan decodes with must have been defined: DC tables for
 * baseline scans and first DC scans, AC tables for baseline and AC scans;
 * quantization tables for the scan's components. */
static bool scan_tables_defined(const jpeg_tables *t, const uint8_t *p, size_t n) {
    if (n < 1 || p[0] < 1 || p[0] > 4 || n < 1 + 2 * (size_t)p[0] + 3) return false;
    int ns = p[0];
    uint8_t ss = p[1 + 2 * ns], ah = p[3 + 2 * ns] >> 4;
    bool need_dc = !t->progressive || (ss == 0 && ah == 0), need_ac = !t->progressive || ss > 0;
    for (int i = 0; i < ns; i++) {
        uint8_t id = p[1 + 2 * i], td = p[2 + 2 * i] >> 4, ta = p[2 + 2 * i] & 15;
        if (td > 3 || ta > 3) return false;
        if (need_dc && !(t->dc & (1u << td))) return false;
        if (need_ac && !(t->ac & (1u << ta))) return false;
        int c = 0;
        while (c < t->n_comp && t->comp_id[c] != id) c++;
        if (c == t->n_comp || !(t->quant & (1u << t->comp_quant[c]))) return false;
    }
    return true;
}

/* Past a scan's entropy-coded data, where every 0xFF data byte is escaped
 * as FF 00 and restart markers are FF D0-D7: the offset of the next real
 * marker, or n when the file ends first. */
static size_t skip_scan(const uint8_t *d, size_t n, size_t i) {
    for (; i + 1 < n; i++)
        if (d[i] == 0xff && d[i + 1] != 0 && !(d[i + 1] >= 0xd0 && d[i + 1] <= 0xd7)) return i;
    return n;
}

int g3_jpeg_inspect(const uint8_t *d, size_t n, const char *name, uint32_t *width, uint32_t *height,
                    int *orientation, g3_error *err) {
    *width = *height = 0;
    *orientation = 1;
    jpeg_tables tables = {0};
    bool have_sof = false, have_exif = false, have_scan = false;
    size_t i = 2; /* after SOI */
    for (;;) {
        while (i + 1 < n && d[i] == 0xff && d[i + 1] == 0xff) i++; /* fill bytes */
        if (i + 2 > n) break;
        if (d[i] != 0xff) return g3_fail(err, "'%s' is a corrupt JPEG (no marker at byte %zu)", name, i);
        uint8_t m = d[i + 1];
        if (m == 0xd9) { /* end of image */
            if (!have_scan) return g3_fail(err, "'%s' is a corrupt JPEG (it ends before any image data)", name);
            return 0;
        }
        if (m == 0xd8 || m == 0x01 || (m >= 0xd0 && m <= 0xd7)) { /* markers without a length */
            i += 2;
            continue;
        }
        if (i + 4 > n) break;
        size_t seg = be16(d + i + 2); /* counts its own two bytes */
        if (seg < 2 || i + 2 + seg > n) break;
        const uint8_t *body = d + i + 4;
        size_t body_len = seg - 2;
        if (is_sof(m) && !have_sof) {
            if (!read_sof(&tables, m, body, body_len))
                return g3_fail(err, "'%s' is a corrupt JPEG (bad frame header)", name);
            *height = be16(body + 1);
            *width = be16(body + 3);
            have_sof = true;
        } else if (m == 0xc4 && !read_dht(&tables, body, body_len)) {
            return g3_fail(err, "'%s' is a corrupt JPEG (bad Huffman table)", name);
        } else if (m == 0xdb && !read_dqt(&tables, body, body_len)) {
            return g3_fail(err, "'%s' is a corrupt JPEG (bad quantization table)", name);
        } else if (m == 0xe1 && !have_exif && body_len > 6 && memcmp(body, "Exif\0\0", 6) == 0) {
            *orientation = exif_orientation(body, body_len);
            have_exif = true;
        }
        i += 2 + seg;
        if (m == 0xda) {
            if (!have_sof) return g3_fail(err, "'%s' is a corrupt JPEG (image data before the frame header)", name);
            if (!scan_tables_defined(&tables, body, body_len))
                return g3_fail(err, "'%s' is a corrupt JPEG (a scan uses an undefined or bad table)", name);
            have_scan = true;
            i = skip_scan(d, n, i);
        }
    }
    /* the file stopped inside a header or a scan */
    return g3_fail(err, "'%s' is a truncated JPEG (no end-of-image marker)", name);
}
