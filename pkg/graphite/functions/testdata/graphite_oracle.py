"""Evaluates targets with the installed graphite-web (Debian graphite-web 1.1.8)
over in-memory series, for TestGraphiteWebOracle.

stdin: {"from": int, "until": int, "targets": [...],
        "data": {name: {"start": int, "step": int, "values": [float|null]}}}
stdout: [{"target": t, "series": [{"name", "start", "step", "values"}]} | {"target": t, "error": msg}]

Fetches answer like whisper: (from, until] gives the points from
from-from%step+step to until-until%step+step (exclusive).
"""
import ast
import json
import math
import os
import re
import sys
import tempfile
import warnings

warnings.simplefilter('ignore')
tmp = tempfile.mkdtemp(prefix='graphite-oracle-')
with open(os.path.join(tmp, 'oracle_settings.py'), 'w') as f:
    f.write("from graphite.settings import *\n"
            "LOG_DIR = %r\nINDEX_FILE = %r\nSTORAGE_DIR = %r\n" % (tmp, os.path.join(tmp, 'index'), tmp))
sys.path.insert(0, tmp)
os.environ['DJANGO_SETTINGS_MODULE'] = 'oracle_settings'

import django  # noqa: E402
django.setup()
from datetime import datetime, timezone  # noqa: E402
import graphite.render.evaluator as evaluator  # noqa: E402
from graphite.render.datalib import TimeSeries  # noqa: E402
from graphite.tags.utils import TaggedSeries  # noqa: E402

req = json.load(sys.stdin)
DATA = req['data']
for d in DATA.values():  # whisper returns floats
    d['values'] = [None if v is None else float(v) for v in d['values']]


def glob_re(glob):
    out = '^'
    for c in glob:
        if c == '*':
            out += '[^.]*'
        elif c == '?':
            out += '[^.]'
        elif c == '{':
            out += '('
        elif c == '}':
            out += ')'
        elif c == ',':
            out += '|'
        elif c in '[]-':
            out += c
        else:
            out += re.escape(c)
    return re.compile(out + '$')


def tag_match(name, exprs):
    tags = TaggedSeries.parse(name).tags
    for e in exprs:
        m = re.match(r'^([^!=]+)(!=~|=~|!=|=)(.*)$', e)
        tag, op, val = m.group(1), m.group(2), m.group(3)
        got = tags.get(tag, '')
        if op == '=' and got != val:
            return False
        if op == '!=' and got == val:
            return False
        if op == '=~' and not re.match(val, got):
            return False
        if op == '!=~' and re.match(val, got):
            return False
    return True


def fetch(ctx, path_expr, timer=None):
    frm = int(ctx['startTime'].timestamp())
    until = int(ctx['endTime'].timestamp())
    if path_expr.startswith('seriesByTag('):
        exprs = ast.literal_eval('[' + path_expr[len('seriesByTag('):-1] + ']')
        match = lambda name: ';' in name and tag_match(name, exprs)
    else:
        rx = glob_re(path_expr)
        match = lambda name: ';' not in name and rx.match(name)
    res = []
    for name in sorted(DATA):
        if not match(name):
            continue
        d = DATA[name]
        step = d['step']
        start = frm - frm % step + step
        end = until - until % step + step
        vals = []
        t = start
        while t < end:
            i = (t - d['start']) // step
            vals.append(d['values'][i] if t >= d['start'] and i < len(d['values']) else None)
            t += step
        s = TimeSeries(name, start, end, step, vals, xFilesFactor=ctx.get('xFilesFactor'))
        s.pathExpression = path_expr
        res.append(s)
    return res


evaluator.fetchData = fetch
evaluator.prefetchData = lambda *a, **k: None

from graphite.render.views import renderViewJson  # noqa: E402

out = []
for target in req['targets']:
    ctx = {
        'startTime': datetime.fromtimestamp(req['from'], timezone.utc),
        'endTime': datetime.fromtimestamp(req['until'], timezone.utc),
        'now': datetime.fromtimestamp(req['until'], timezone.utc),
        'localOnly': True, 'data': [], 'prefetched': {}, 'tzinfo': timezone.utc,
    }
    try:
        series = []
        result = evaluator.evaluateTarget(ctx, target)
        if req.get('maxDataPoints'):
            resp = renderViewJson({'maxDataPoints': req['maxDataPoints']}, result)
            for r in json.loads(resp.content.decode('utf-8')):
                pts = r['datapoints']
                series.append({'name': r['target'], 'start': pts[0][1] if pts else 0,
                               'step': pts[1][1] - pts[0][1] if len(pts) > 1 else 0,
                               'values': [p[0] for p in pts]})
            out.append({'target': target, 'series': series})
            continue
        for s in result:
            vals = [None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in s]
            ts = list(range(int(s.start), int(s.end) + 1, int(s.step * s.valuesPerPoint)))
            n = min(len(vals), len(ts))
            series.append({'name': s.name, 'start': s.start, 'step': s.step * s.valuesPerPoint, 'values': vals[:n],
                           'tags': dict(s.tags)})
        out.append({'target': target, 'series': series})
    except Exception as e:  # the test reports it
        out.append({'target': target, 'error': repr(e)})
json.dump(out, sys.stdout)
