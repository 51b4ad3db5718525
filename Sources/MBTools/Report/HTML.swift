import Foundation

/// The page around a report: escaping, the stylesheet (screen, phone and print) and the few
/// lines of script that sort tables. Everything inline: the file opens offline, alone.
enum HTML {
    /// Text safe inside elements and quoted attributes.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    static func page(title: String, body: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title))</title>
        <style>\(style)</style>
        </head>
        <body>
        \(body)
        <script>\(sortScript)</script>
        </body>
        </html>

        """
    }

    /// Readable on a phone (one column, tables scroll sideways), printable (no backgrounds
    /// needed, charts and table rows kept whole).
    static let style = """
        body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1b1f24;max-width:1100px;margin:0 auto;padding:12px}
        h1{font-size:1.45em;margin:.3em 0}h2{font-size:1.15em;margin:1.4em 0 .4em;border-bottom:1px solid #ccd;padding-bottom:.2em}
        .facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:6px 16px;margin:.6em 0}
        .facts div{border-left:3px solid #3b6ea5;padding-left:8px}.facts b{display:block;font-size:1.15em}
        .scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.88em;white-space:nowrap}
        th,td{padding:3px 8px;border-bottom:1px solid #e2e4e8;text-align:left}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
        th{cursor:pointer;background:#f3f5f8;position:sticky;top:0}th[aria-sort]::after{content:" \\2195";color:#889}
        svg{max-width:100%;height:auto;display:block;margin:.4em 0}svg text{font:11px system-ui,sans-serif;fill:#333}
        .note{color:#555;font-size:.9em}pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:.85em}
        .bad{color:#a11}.ok{color:#176317}
        @media (max-width:600px){body{font-size:14px;padding:6px}}
        @media print{body{max-width:none;font-size:10pt}th{position:static}svg,tr,pre{break-inside:avoid}.scroll{overflow:visible}}
        """

    /// Click a column header to sort by it (numbers by data-v, text otherwise); again to reverse.
    static let sortScript = """
        document.querySelectorAll("table.sortable th").forEach(function(th,i){th.setAttribute("aria-sort","none");th.onclick=function(){
        var tb=th.closest("table").tBodies[0],rows=Array.from(tb.rows),up=th.dataset.up!=="1";th.dataset.up=up?"1":"0";
        function key(r){var c=r.cells[i];var v=c.dataset.v;return v!==undefined?parseFloat(v):c.textContent}
        rows.sort(function(a,b){var x=key(a),y=key(b);var o=(typeof x==="number"&&typeof y==="number")?x-y:String(x).localeCompare(String(y));return up?o:-o});
        rows.forEach(function(r){tb.appendChild(r)})}})
        """
}
