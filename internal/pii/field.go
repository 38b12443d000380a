package pii

// Field-name classification.
//
// A name is split into lower-case words on '-', '_', '.', spaces, digits,
// any other punctuation and camelCase boundaries ("userEmailAddress",
// "IPAddress", "first-name", "DOB"). The words are then compared, as
// contiguous runs joined together, against a dictionary, so "first_name",
// "firstName" and "firstname" all hit the entry "firstname". The longest
// hit wins (so "ip_address" is an IP and "mac_address" is vetoed rather than
// an Address), then the higher score.
//
// Scores: 0.9-0.95 for names that say exactly what they hold ("email",
// "phone_number", "iban", "ssn", "dob"), 0.7-0.85 for strong but looser ones
// ("mobile", "address", "user_id"), 0.4-0.6 for ambiguous words that only
// count when they are the whole name ("name", "card", "cell", "zip").
// Metadata words elsewhere in the name ("email_verified", "phone_country",
// "has_ssn", "ip_hash") multiply the score by 0.4: the field describes the
// data rather than carrying it.

type fieldRule struct {
	kind      Kind
	score     float64
	wholeOnly bool // counts only when it is the entire name
}

// veto is a dictionary entry that claims the words but reports nothing.
const veto Kind = ""

var fieldDict = map[string]fieldRule{
	// email
	"email": {Email, 0.9, false}, "emails": {Email, 0.9, false}, "emailaddress": {Email, 0.95, false},
	"emailaddr": {Email, 0.95, false}, "mail": {Email, 0.6, true}, "mailaddress": {Email, 0.9, false},
	"useremail": {Email, 0.9, false}, "customeremail": {Email, 0.9, false}, "contactemail": {Email, 0.9, false},
	"billingemail": {Email, 0.9, false}, "workemail": {Email, 0.9, false}, "courriel": {Email, 0.9, false}, "correo": {Email, 0.7, false}, "correoelectronico": {Email, 0.9, false},

	// phone
	"phone": {Phone, 0.9, false}, "phonenumber": {Phone, 0.95, false}, "phoneno": {Phone, 0.95, false},
	"phonenum": {Phone, 0.95, false}, "mobile": {Phone, 0.85, false}, "mobilenumber": {Phone, 0.95, false},
	"mobilephone": {Phone, 0.95, false}, "mobileno": {Phone, 0.95, false}, "cellphone": {Phone, 0.9, false},
	"cellnumber": {Phone, 0.9, false}, "cell": {Phone, 0.5, true}, "telephone": {Phone, 0.9, false},
	"telephonenumber": {Phone, 0.95, false}, "tel": {Phone, 0.7, false}, "telno": {Phone, 0.9, false},
	"telnumber": {Phone, 0.9, false}, "fax": {Phone, 0.7, false}, "faxnumber": {Phone, 0.9, false},
	"msisdn": {Phone, 0.9, false}, "telefon": {Phone, 0.9, false}, "telefono": {Phone, 0.9, false},
	"telefonnummer": {Phone, 0.95, false}, "handynummer": {Phone, 0.95, false}, "mobil": {Phone, 0.8, false},
	"whatsapp": {Phone, 0.6, false}, "userphone": {Phone, 0.9, false}, "customerphone": {Phone, 0.9, false},
	"contactphone": {Phone, 0.9, false}, "homephone": {Phone, 0.9, false}, "workphone": {Phone, 0.9, false},
	"smartphone": {veto, 0, false}, "iphone": {veto, 0, false}, "headphone": {veto, 0, false},
	"headphones": {veto, 0, false}, "microphone": {veto, 0, false},

	// credit card
	"creditcard": {CreditCard, 0.95, false}, "creditcardnumber": {CreditCard, 0.95, false},
	"debitcard": {CreditCard, 0.9, false}, "cardnumber": {CreditCard, 0.95, false}, "cardno": {CreditCard, 0.95, false},
	"cardnum": {CreditCard, 0.95, false}, "ccnumber": {CreditCard, 0.95, false}, "ccnum": {CreditCard, 0.95, false},
	"ccno": {CreditCard, 0.95, false}, "ccn": {CreditCard, 0.8, false}, "cc": {CreditCard, 0.5, true},
	"pan": {CreditCard, 0.5, true}, "cvv": {CreditCard, 0.9, false}, "cvc": {CreditCard, 0.9, false},
	"cvn": {CreditCard, 0.8, false}, "card": {CreditCard, 0.4, true}, "paymentcard": {CreditCard, 0.85, false},
	"giftcard": {veto, 0, false}, "cardtype": {veto, 0, false}, "cardbrand": {veto, 0, false},

	// IBAN / bank account
	"iban": {IBAN, 0.95, false}, "bankaccount": {IBAN, 0.7, false}, "bankaccountnumber": {IBAN, 0.8, false},
	"accountnumber": {IBAN, 0.6, false}, "kontonummer": {IBAN, 0.8, false},

	// IP address
	"ip": {IPAddress, 0.9, false}, "ipv": {IPAddress, 0.9, false}, "ipaddress": {IPAddress, 0.95, false},
	"ipaddr": {IPAddress, 0.95, false}, "remoteaddr": {IPAddress, 0.9, false}, "remoteaddress": {IPAddress, 0.9, false},
	"clientip": {IPAddress, 0.9, false}, "userip": {IPAddress, 0.9, false}, "remoteip": {IPAddress, 0.9, false},
	"realip": {IPAddress, 0.9, false}, "visitorip": {IPAddress, 0.9, false}, "forwardedfor": {IPAddress, 0.85, false}, "xforwardedfor": {IPAddress, 0.9, false},

	// US SSN / UK NINO
	"ssn": {USSSN, 0.95, false}, "socialsecurity": {USSSN, 0.9, false}, "socialsecuritynumber": {USSSN, 0.95, false},
	"socialsecurityno": {USSSN, 0.95, false}, "nino": {UKNINO, 0.9, false}, "ninumber": {UKNINO, 0.9, false},
	"nationalinsurance": {UKNINO, 0.85, false}, "nationalinsurancenumber": {UKNINO, 0.95, false},
	"nationalinsuranceno": {UKNINO, 0.95, false},

	// person names
	"firstname": {Name, 0.85, false}, "lastname": {Name, 0.85, false}, "fullname": {Name, 0.85, false},
	"surname": {Name, 0.85, false}, "givenname": {Name, 0.85, false}, "familyname": {Name, 0.85, false},
	"middlename": {Name, 0.85, false}, "maidenname": {Name, 0.85, false}, "fname": {Name, 0.75, false},
	"lname": {Name, 0.75, false}, "realname": {Name, 0.85, false}, "legalname": {Name, 0.85, false},
	"customername": {Name, 0.85, false}, "contactname": {Name, 0.85, false}, "billingname": {Name, 0.85, false},
	"shippingname": {Name, 0.85, false}, "cardholder": {Name, 0.85, false}, "cardholdername": {Name, 0.85, false},
	"holdername": {Name, 0.8, false}, "accountholder": {Name, 0.8, false}, "personname": {Name, 0.85, false},
	"recipientname": {Name, 0.85, false}, "sendername": {Name, 0.85, false}, "patientname": {Name, 0.9, false},
	"displayname": {Name, 0.7, false}, "nickname": {Name, 0.6, false}, "name": {Name, 0.4, true},
	"vorname": {Name, 0.85, false}, "nachname": {Name, 0.85, false}, "prenom": {Name, 0.85, false},
	"prénom": {Name, 0.85, false}, "apellido": {Name, 0.85, false}, "apellidos": {Name, 0.85, false},

	// postal address
	"address": {Address, 0.8, false}, "addr": {Address, 0.7, false}, "streetaddress": {Address, 0.9, false},
	"homeaddress": {Address, 0.9, false}, "billingaddress": {Address, 0.9, false}, "shippingaddress": {Address, 0.9, false},
	"mailingaddress": {Address, 0.9, false}, "postaladdress": {Address, 0.9, false}, "addressline": {Address, 0.9, false},
	"street": {Address, 0.8, false}, "streetname": {Address, 0.8, false}, "housenumber": {Address, 0.7, false},
	"postcode": {Address, 0.6, false}, "postalcode": {Address, 0.6, false}, "zipcode": {Address, 0.6, false},
	"zip": {Address, 0.5, true}, "adresse": {Address, 0.8, false}, "anschrift": {Address, 0.85, false},
	"strasse": {Address, 0.8, false}, "straße": {Address, 0.8, false}, "direccion": {Address, 0.8, false},
	"dirección":  {Address, 0.8, false},
	"macaddress": {veto, 0, false}, "walletaddress": {veto, 0, false}, "webaddress": {veto, 0, false},
	"serveraddress": {veto, 0, false}, "hostaddress": {veto, 0, false}, "contractaddress": {veto, 0, false},
	"urladdress": {veto, 0, false}, "linkaddress": {veto, 0, false}, "bitcoinaddress": {veto, 0, false},

	// date of birth
	"dob": {DateOfBirth, 0.9, false}, "birthdate": {DateOfBirth, 0.95, false}, "dateofbirth": {DateOfBirth, 0.95, false},
	"birthday": {DateOfBirth, 0.9, false}, "bday": {DateOfBirth, 0.8, false}, "birthdt": {DateOfBirth, 0.9, false},
	"birthyear": {DateOfBirth, 0.6, false}, "yearofbirth": {DateOfBirth, 0.6, false},
	"geburtsdatum": {DateOfBirth, 0.95, false}, "geburtstag": {DateOfBirth, 0.9, false},
	"fechadenacimiento": {DateOfBirth, 0.95, false}, "datedenaissance": {DateOfBirth, 0.95, false},

	// passport
	"passport": {Passport, 0.9, false}, "passportnumber": {Passport, 0.95, false}, "passportno": {Passport, 0.95, false},
	"passportnum": {Passport, 0.95, false}, "passportid": {Passport, 0.95, false},

	// pseudonymous identifiers
	"userid": {UserID, 0.7, false}, "customerid": {UserID, 0.7, false}, "accountid": {UserID, 0.7, false},
	"memberid": {UserID, 0.7, false}, "subscriberid": {UserID, 0.7, false}, "patientid": {UserID, 0.8, false},
	"employeeid": {UserID, 0.7, false}, "studentid": {UserID, 0.7, false}, "personid": {UserID, 0.7, false},
	"contactid": {UserID, 0.7, false}, "visitorid": {UserID, 0.6, false}, "clientid": {UserID, 0.6, false},
	"deviceid": {UserID, 0.6, false}, "externalid": {UserID, 0.5, false}, "uid": {UserID, 0.6, false},
	"username": {UserID, 0.75, false}, "userlogin": {UserID, 0.75, false}, "login": {UserID, 0.5, true},
	"screenname": {UserID, 0.75, false}, "handle": {UserID, 0.5, true},

	// credentials
	"password": {Credential, 0.95, false}, "passwd": {Credential, 0.95, false}, "pwd": {Credential, 0.9, false},
	"passphrase": {Credential, 0.95, false}, "pass": {Credential, 0.5, true}, "secret": {Credential, 0.8, false},
	"clientsecret": {Credential, 0.95, false}, "token": {Credential, 0.7, false}, "accesstoken": {Credential, 0.9, false},
	"refreshtoken": {Credential, 0.9, false}, "authtoken": {Credential, 0.9, false}, "idtoken": {Credential, 0.9, false},
	"bearertoken": {Credential, 0.9, false}, "apikey": {Credential, 0.9, false}, "apisecret": {Credential, 0.95, false},
	"privatekey": {Credential, 0.95, false}, "otp": {Credential, 0.8, false}, "pin": {Credential, 0.5, true},
	"passcode": {Credential, 0.9, false}, "securitycode": {Credential, 0.8, false},
}

// fieldMeta are words that make a field about the data rather than the data
// itself ("email_verified", "phone_country_code", "ip_hash").
var fieldMeta = map[string]bool{
	"verified": true, "valid": true, "validated": true, "invalid": true, "confirmed": true,
	"opt": true, "optin": true, "optout": true, "consent": true, "subscribed": true,
	"unsubscribed": true, "count": true, "sent": true, "enabled": true, "disabled": true,
	"status": true, "type": true, "provider": true, "domain": true, "hash": true,
	"hashed": true, "sha": true, "md": true, "length": true, "len": true,
	"exists": true, "present": true, "missing": true, "changed": true, "updated": true,
	"error": true, "errors": true, "format": true, "is": true, "has": true,
	"field": true, "label": true, "placeholder": true, "clicked": true, "click": true,
	"focus": true, "shown": true, "submitted": true, "country": true, "region": true,
	"city": true, "masked": true, "anonymized": true, "anonymised": true, "truncated": true,
	"redacted": true, "prefix": true, "suffix": true, "last": true, "brand": true,
	"network": true, "version": true, "entered": true, "required": true, "policy": true,
	"strength": true, "reset": true, "expires": true, "expiry": true, "expired": true,
	"mismatch": true, "attempt": true, "attempts": true, "at": true, "date": true,
	"time": true, "lookup": true,
	// UI and device words: "mobile_menu", "email_button", "phone_screen".
	"app": true, "device": true, "os": true, "browser": true, "platform": true,
	"view": true, "web": true, "layout": true, "menu": true, "nav": true,
	"button": true, "btn": true, "link": true, "icon": true, "banner": true,
	"modal": true, "popup": true, "tab": true, "page": true, "screen": true,
	"template": true, "widget": true, "section": true, "step": true, "cta": true,
}

const (
	maxFieldBytes = 96
	maxFieldWords = 12
)

// FieldName classifies a field or property name ("user_email", "phoneNumber",
// "IP-Address", "dob") into the kind of personal data it is likely to carry,
// with a score; ok=false when the name suggests none. It is case-insensitive
// and looks at the first 96 bytes only.
func FieldName(name string) (Finding, bool) { return classifyWords(name, fieldDict) }
