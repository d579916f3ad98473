package parser

import (
	"strconv"
	"strings"
)

// The grammar follows graphite-web 1.1's render grammar:
//
//	target     = expression { "|" call }          piped calls: a.b|scale(2) == scale(a.b,2)
//	expression = call | path
//	call       = funcname "(" [ args ] ")"
//	args       = arg { "," arg }                  positional arguments come before keyword ones
//	arg        = [ argname "=" ] ( bool | number | none | inf | string | expression )
//	path       = element { "." element }
//	element    = ( chars | "{" chars { "," chars } "}" | "\" symbol )+
//
// Path characters are the printable characters except ( ) { } , . ' " \ |
// (so globs *, ?, [0-9], tagged names a.b;tag=value and ~!@#$%^&:;<>=+-_ are
// all part of a path); bytes >= 0x80 are accepted too (graphite-web's
// UTF8_METRICS). A backslash makes one of the excluded characters (or "=")
// part of the path. Strings keep their content exactly as written between the
// quotes, backslashes included, as graphite-web does: regular expressions
// such as '\.' and replacements such as '\1' reach the function untouched.
// A backslash only stops the next character from closing the string.

// Parse parses one render target.
func Parse(target string) (*Expr, error) {
	p := &parser{src: target}
	p.skipSpace()
	if p.pos >= len(p.src) {
		return nil, p.errorf(p.pos, "expected a metric path or a function call, found end of target")
	}
	e, err := p.expression()
	if err != nil {
		return nil, err
	}
	for {
		save := p.pos
		p.skipSpace()
		if p.pos < len(p.src) && p.src[p.pos] == '|' {
			p.pos++
			p.skipSpace()
			if !p.atCall() {
				return nil, p.errorf(p.pos, "expected a function call after '|'")
			}
			c, err := p.call()
			if err != nil {
				return nil, err
			}
			// a|f(x) is f(a,x): the piped expression becomes the first argument.
			c.Args = append([]*Expr{e}, c.Args...)
			c.Pos = e.Pos
			c.Source = p.src[e.Pos:p.pos]
			e = c
			continue
		}
		p.pos = save
		break
	}
	p.skipSpace()
	if p.pos < len(p.src) {
		return nil, p.errorf(p.pos, "unexpected "+p.describe(p.pos)+" after the end of the target")
	}
	return e, nil
}

// ParsePrefix parses the longest target at the start of s and ignores what
// follows, as graphite-web's grammar does when it re-parses a series name
// (aliasByNode on "sumSeries(a.b) (avg: 1.0)" uses the path a.b). When the
// text does not start with a valid call it falls back to a bare path
// ("movingMedian(,2)" gives the path movingMedian).
func ParsePrefix(s string) (*Expr, error) {
	p := &parser{src: s}
	p.skipSpace()
	if p.pos >= len(p.src) {
		return nil, p.errorf(p.pos, "expected a metric path or a function call, found end of target")
	}
	start := p.pos
	e, err := p.expression()
	if err != nil {
		p.pos = start
		return p.path()
	}
	return e, nil
}

type parser struct {
	src string
	pos int
}

func (p *parser) errorf(pos int, msg string) *Error {
	return &Error{Target: p.src, Pos: pos, Msg: msg}
}

func (p *parser) describe(pos int) string {
	if pos >= len(p.src) {
		return "end of target"
	}
	return strconv.Quote(p.src[pos : pos+1])
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (p *parser) skipSpace() {
	for p.pos < len(p.src) && isSpace(p.src[p.pos]) {
		p.pos++
	}
}

// pathSymbols are the printable characters that cannot appear unescaped in a path.
const pathSymbols = "(){},.'\"\\|"

func isPathChar(c byte) bool {
	if c >= 0x80 {
		return true
	}
	return c > ' ' && c < 0x7f && strings.IndexByte(pathSymbols, c) < 0
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdent(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// identAt returns the end of an identifier starting at pos, or pos if none.
func (p *parser) identAt(pos int) int {
	if pos >= len(p.src) || !isIdentStart(p.src[pos]) {
		return pos
	}
	i := pos + 1
	for i < len(p.src) && isIdent(p.src[i]) {
		i++
	}
	return i
}

// followedBy reports whether, after optional whitespace, pos is at one of the
// argument terminators ',' ')' or the end of the target.
func (p *parser) terminatorAt(pos int) bool {
	for pos < len(p.src) && isSpace(p.src[pos]) {
		pos++
	}
	return pos >= len(p.src) || p.src[pos] == ',' || p.src[pos] == ')'
}

// atCall reports whether a function call starts at the current position.
func (p *parser) atCall() bool {
	end := p.identAt(p.pos)
	if end == p.pos {
		return false
	}
	for end < len(p.src) && isSpace(p.src[end]) {
		end++
	}
	return end < len(p.src) && p.src[end] == '('
}

func (p *parser) expression() (*Expr, error) {
	if p.atCall() {
		return p.call()
	}
	return p.path()
}

func (p *parser) call() (*Expr, error) {
	start := p.pos
	end := p.identAt(p.pos)
	e := &Expr{Kind: KindCall, Pos: start, Name: p.src[start:end]}
	p.pos = end
	p.skipSpace()
	p.pos++ // '(' checked by atCall
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == ')' {
		p.pos++
		e.Source = p.src[start:p.pos]
		return e, nil
	}
	for {
		p.skipSpace()
		argStart := p.pos
		// keyword argument: name = value
		if nameEnd := p.identAt(p.pos); nameEnd > p.pos {
			i := nameEnd
			for i < len(p.src) && isSpace(p.src[i]) {
				i++
			}
			if i < len(p.src) && p.src[i] == '=' {
				name := p.src[argStart:nameEnd]
				for _, kw := range e.KwArgs {
					if kw.Name == name {
						return nil, p.errorf(argStart, "keyword argument "+strconv.Quote(name)+" given twice")
					}
				}
				p.pos = i + 1
				p.skipSpace()
				v, err := p.arg()
				if err != nil {
					return nil, err
				}
				e.KwArgs = append(e.KwArgs, KwArg{Name: name, Value: v})
				goto next
			}
		}
		if len(e.KwArgs) > 0 {
			return nil, p.errorf(argStart, "expected a keyword argument (name=value): positional arguments must come before keyword arguments")
		}
		{
			v, err := p.arg()
			if err != nil {
				return nil, err
			}
			e.Args = append(e.Args, v)
		}
	next:
		p.skipSpace()
		if p.pos >= len(p.src) {
			return nil, p.errorf(p.pos, "expected ',' or ')' to continue the arguments of "+e.Name+", found end of target")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
			continue
		case ')':
			p.pos++
			e.Source = p.src[start:p.pos]
			return e, nil
		default:
			return nil, p.errorf(p.pos, "expected ',' or ')' in the arguments of "+e.Name+", found "+p.describe(p.pos))
		}
	}
}

// arg parses one argument value at the current position (whitespace skipped).
func (p *parser) arg() (*Expr, error) {
	start := p.pos
	if start >= len(p.src) {
		return nil, p.errorf(start, "expected an argument, found end of target")
	}
	c := p.src[start]
	switch {
	case c == '\'' || c == '"':
		return p.str()
	case c == ')' || c == ',':
		return nil, p.errorf(start, "expected an argument, found "+p.describe(start))
	}
	// keywords true/false/none/inf, in any letter case, when they stand alone
	if end := p.identAt(start); end > start && p.terminatorAt(end) {
		word := strings.ToLower(p.src[start:end])
		switch word {
		case "true", "false":
			p.pos = end
			return &Expr{Kind: KindBool, Pos: start, Source: p.src[start:end], Bool: word == "true"}, nil
		case "none":
			p.pos = end
			return &Expr{Kind: KindNone, Pos: start, Source: p.src[start:end]}, nil
		case "inf":
			p.pos = end
			return &Expr{Kind: KindNumber, Pos: start, Source: p.src[start:end], Num: posInf()}, nil
		}
	}
	if end, isInt, ok := p.numberAt(start); ok && p.terminatorAt(end) {
		text := p.src[start:end]
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			// out of range: ParseFloat returns ±Inf with an error, which is what Python's float() gives
			if ne, ok := err.(*strconv.NumError); !ok || ne.Err != strconv.ErrRange {
				return nil, p.errorf(start, "invalid number "+strconv.Quote(text))
			}
		}
		p.pos = end
		return &Expr{Kind: KindNumber, Pos: start, Source: text, Num: f, IsInt: isInt}, nil
	}
	return p.expression()
}

func posInf() float64 { f, _ := strconv.ParseFloat("inf", 64); return f }

// numberAt matches -?\d+(\.\d+)?([eE]-?\d+)? at pos.
func (p *parser) numberAt(pos int) (end int, isInt bool, ok bool) {
	i := pos
	if i < len(p.src) && p.src[i] == '-' {
		i++
	}
	digits := func() int {
		j := i
		for j < len(p.src) && p.src[j] >= '0' && p.src[j] <= '9' {
			j++
		}
		return j - i
	}
	n := digits()
	if n == 0 {
		return pos, false, false
	}
	i += n
	isInt = true
	if i+1 < len(p.src) && p.src[i] == '.' && p.src[i+1] >= '0' && p.src[i+1] <= '9' {
		i++
		i += digits()
		isInt = false
	}
	if i < len(p.src) && (p.src[i] == 'e' || p.src[i] == 'E') {
		j := i + 1
		if j < len(p.src) && p.src[j] == '-' {
			j++
		}
		k := j
		for k < len(p.src) && p.src[k] >= '0' && p.src[k] <= '9' {
			k++
		}
		if k > j {
			i = k
			isInt = false
		}
	}
	return i, isInt, true
}

func (p *parser) str() (*Expr, error) {
	start := p.pos
	q := p.src[start]
	i := start + 1
	for i < len(p.src) {
		c := p.src[i]
		switch {
		case c == '\\':
			if i+1 >= len(p.src) {
				return nil, p.errorf(i, "unterminated string: a backslash ends the target")
			}
			i += 2
			continue
		case c == '\n' || c == '\r':
			return nil, p.errorf(start, "unterminated string: line break before the closing "+string(q))
		case c == q:
			if i+1 < len(p.src) && p.src[i+1] == q { // doubled quote stands for itself
				i += 2
				continue
			}
			p.pos = i + 1
			return &Expr{Kind: KindString, Pos: start, Source: p.src[start:p.pos], Str: p.src[start+1 : i]}, nil
		}
		i++
	}
	return nil, p.errorf(start, "unterminated string: expected a closing "+string(q))
}

// path parses a metric path or glob.
func (p *parser) path() (*Expr, error) {
	start := p.pos
	var b strings.Builder
	for {
		// one path node
		nodeStart := p.pos
		for p.pos < len(p.src) {
			c := p.src[p.pos]
			switch {
			case c == '\\':
				if p.pos+1 >= len(p.src) {
					return nil, p.errorf(p.pos, "expected a character to escape after '\\', found end of target")
				}
				e := p.src[p.pos+1]
				if strings.IndexByte(pathSymbols, e) < 0 && e != '=' {
					return nil, p.errorf(p.pos, "only one of ( ) { } , . ' \" \\ | = can be escaped in a metric path")
				}
				b.WriteByte(e)
				p.pos += 2
			case c == '{':
				if err := p.braces(&b); err != nil {
					return nil, err
				}
			case isPathChar(c):
				b.WriteByte(c)
				p.pos++
			default:
				goto nodeDone
			}
		}
	nodeDone:
		if p.pos == nodeStart {
			if p.pos == start {
				return nil, p.errorf(p.pos, "expected a metric path, a function call or a literal, found "+p.describe(p.pos))
			}
			return nil, p.errorf(p.pos, "expected a path node after '.', found "+p.describe(p.pos))
		}
		if p.pos < len(p.src) && p.src[p.pos] == '.' {
			b.WriteByte('.')
			p.pos++
			continue
		}
		break
	}
	return &Expr{Kind: KindPath, Pos: start, Source: p.src[start:p.pos], Path: b.String()}, nil
}

// braces parses a {a,b,c} alternative inside a path node.
func (p *parser) braces(b *strings.Builder) error {
	open := p.pos
	b.WriteByte('{')
	p.pos++
	for {
		elemStart := p.pos
		for p.pos < len(p.src) {
			c := p.src[p.pos]
			if c == '\\' && p.pos+1 < len(p.src) && (strings.IndexByte(pathSymbols, p.src[p.pos+1]) >= 0 || p.src[p.pos+1] == '=') {
				b.WriteByte(p.src[p.pos+1])
				p.pos += 2
				continue
			}
			if !isPathChar(c) {
				break
			}
			b.WriteByte(c)
			p.pos++
		}
		if p.pos == elemStart {
			return p.errorf(p.pos, "expected an alternative inside '{...}' opened at position "+strconv.Itoa(open)+", found "+p.describe(p.pos))
		}
		if p.pos >= len(p.src) {
			return p.errorf(p.pos, "expected '}' to close '{' at position "+strconv.Itoa(open)+", found end of target")
		}
		switch p.src[p.pos] {
		case ',':
			b.WriteByte(',')
			p.pos++
		case '}':
			b.WriteByte('}')
			p.pos++
			return nil
		default:
			return p.errorf(p.pos, "expected ',' or '}' inside '{...}' opened at position "+strconv.Itoa(open)+", found "+p.describe(p.pos))
		}
	}
}
